"""Bad input over raw sockets: the broker answers per protocol or closes that
connection, allocates nothing huge, and keeps serving everyone else."""

from __future__ import annotations

import os
import resource
import struct

import pytest
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.list_offsets.v9 import request as lo

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.protocol.records import RecordSpec, build_batch
from strom.testing import EmbeddedBroker
from tests.broker.raw_client import send
from tests.wire import WireClient, encode_request, metadata_request, produce_request


def _api_versions_ok(bootstrap: str) -> None:
    with WireClient(bootstrap) as client:
        response = client.request(ApiKey.API_VERSIONS, 3, ApiVersionsRequest(
            client_software_name="t", client_software_version="1"))
        assert response.error_code == ErrorCode.none


def _latest_offset(client: WireClient, topic: str) -> int:
    response = client.request(ApiKey.LIST_OFFSETS, 9, lo.ListOffsetsRequest(
        replica_id=-1, isolation_level=0, topics=(lo.ListOffsetsTopic(name=topic, partitions=(
            lo.ListOffsetsPartition(partition_index=0, current_leader_epoch=-1,
                                    timestamp=-1),)),)))
    partition = response.topics[0].partitions[0]
    assert partition.error_code == ErrorCode.none
    return int(partition.offset)


def test_garbage_frame_closes_connection(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap) as client:
        client.send_raw(struct.pack(">i", 64) + struct.pack(">hhi", 3, 12, 1) + os.urandom(56))
        assert client.is_closed_by_peer()
    _api_versions_ok(broker.bootstrap)


def test_huge_size_prefix_closes_without_allocating(broker: EmbeddedBroker) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with WireClient(broker.bootstrap) as client:
        client.send_raw(struct.pack(">i", 2**31 - 1) + b"\x00" * 1024)
        assert client.is_closed_by_peer()
    with WireClient(broker.bootstrap) as client:
        client.send_raw(struct.pack(">i", -5))
        assert client.is_closed_by_peer()
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 64 * 1024
    _api_versions_ok(broker.bootstrap)


def test_frame_shorter_than_header_closes(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap) as client:
        client.send_raw(struct.pack(">i", 6) + struct.pack(">hhh", 3, 12, 0))
        assert client.is_closed_by_peer()


def test_truncated_body_closes(broker: EmbeddedBroker, topic_name: str) -> None:
    wire = encode_request(ApiKey.METADATA, 12, 1, metadata_request(topic_name))
    payload = wire[4:-3]
    with WireClient(broker.bootstrap) as client:
        client.send_raw(struct.pack(">i", len(payload)) + payload)
        assert client.is_closed_by_peer()
    _api_versions_ok(broker.bootstrap)


def test_partial_frame_does_not_block_other_clients(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap) as stalled:
        stalled.send_raw(struct.pack(">i", 1000) + b"\x00" * 10)
        _api_versions_ok(broker.bootstrap)
        assert not stalled.is_closed_by_peer(timeout=0.2)


def test_unknown_api_key_closes(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap) as client:
        client.send_raw(struct.pack(">ihhih", 10, 999, 0, 1, -1))
        assert client.is_closed_by_peer()


def test_api_versions_too_new_gets_v0_unsupported_version(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap) as client:
        # v127 of ApiVersions with an empty body: the broker must answer in v0.
        client.send_raw(struct.pack(">ihhih", 10, ApiKey.API_VERSIONS, 127, 42, -1))
        correlation_id, response = client.receive(ApiKey.API_VERSIONS, 0)
        assert correlation_id == 42
        assert response.error_code == ErrorCode.unsupported_version
        keys = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
        assert keys[ApiKey.API_VERSIONS] == (0, 4)
        assert keys[ApiKey.PRODUCE][1] >= 12


def test_unsupported_version_of_other_api_closes(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap) as client:
        client.send_raw(struct.pack(">ihhih", 10, ApiKey.METADATA, 99, 1, -1))
        assert client.is_closed_by_peer()
    with WireClient(broker.bootstrap) as client:
        # Produce v0-v2 were removed in Kafka 4.0.
        client.send_raw(struct.pack(">ihhih", 10, ApiKey.PRODUCE, 2, 1, -1))
        assert client.is_closed_by_peer()


def test_corrupt_crc_is_rejected_and_nothing_written(broker: EmbeddedBroker,
                                                     topic_name: str) -> None:
    with WireClient(broker.bootstrap) as client:
        client.request(ApiKey.METADATA, 12, metadata_request(topic_name))
        batch = bytearray(build_batch([RecordSpec(key=b"k", value=b"v" * 100)]))
        batch[-5] ^= 0xFF
        response = client.request(ApiKey.PRODUCE, 9, produce_request(topic_name, bytes(batch)))
        partition = response.responses[0].partition_responses[0]
        assert partition.error_code == ErrorCode.corrupt_message
        assert _latest_offset(client, topic_name) == 0
        good = build_batch([RecordSpec(key=b"k", value=b"v")])
        response = client.request(ApiKey.PRODUCE, 9, produce_request(topic_name, good))
        assert response.responses[0].partition_responses[0].error_code == ErrorCode.none
        assert _latest_offset(client, topic_name) == 1


@pytest.mark.parametrize("mangle", ["count", "length", "trailing", "two_batches"])
def test_malformed_batches_rejected(broker: EmbeddedBroker, topic_name: str,
                                    mangle: str) -> None:
    batch = bytearray(build_batch([RecordSpec(key=b"k", value=b"v"),
                                   RecordSpec(key=b"k2", value=b"v2")]))
    if mangle == "count":
        struct.pack_into(">i", batch, 57, 3)
    elif mangle == "length":
        struct.pack_into(">i", batch, 8, len(batch))
    elif mangle == "trailing":
        batch += b"\x00\x01"
    else:
        batch += bytes(batch)
    with WireClient(broker.bootstrap) as client:
        client.request(ApiKey.METADATA, 12, metadata_request(topic_name))
        response = client.request(ApiKey.PRODUCE, 9, produce_request(topic_name, bytes(batch)))
        code = response.responses[0].partition_responses[0].error_code
        assert code in (ErrorCode.corrupt_message, ErrorCode.invalid_record)
        assert _latest_offset(client, topic_name) == 0


def test_pipelined_requests_answered_in_order(broker: EmbeddedBroker, topic_name: str) -> None:
    with WireClient(broker.bootstrap) as client:
        client.request(ApiKey.METADATA, 12, metadata_request(topic_name))
        sent = []
        for i in range(60):
            if i % 3 == 0:
                sent.append((client.send(ApiKey.PRODUCE, 9, produce_request(
                    topic_name, build_batch([RecordSpec(value=str(i).encode())]), acks=-1)),
                    ApiKey.PRODUCE, 9))
            elif i % 3 == 1:
                sent.append((client.send(ApiKey.METADATA, 12, metadata_request(topic_name)),
                             ApiKey.METADATA, 12))
            else:
                sent.append((client.send(ApiKey.API_VERSIONS, 3, ApiVersionsRequest(
                    client_software_name="t", client_software_version="1")),
                    ApiKey.API_VERSIONS, 3))
        offsets = []
        for correlation_id, api_key, version in sent:
            got, response = client.receive(api_key, version)
            assert got == correlation_id
            if api_key == ApiKey.PRODUCE:
                offsets.append(response.responses[0].partition_responses[0].base_offset)
        assert offsets == list(range(20))


def test_acks_zero_failure_closes_connection(broker: EmbeddedBroker, topic_name: str) -> None:
    with WireClient(broker.bootstrap) as client:
        client.request(ApiKey.METADATA, 12, metadata_request(topic_name))
        batch = bytearray(build_batch([RecordSpec(value=b"x")]))
        batch[-1] ^= 0xFF
        client.send(ApiKey.PRODUCE, 9, produce_request(topic_name, bytes(batch), acks=0))
        assert client.is_closed_by_peer()


def test_client_produce_to_internal_topic_is_refused(fresh_broker: EmbeddedBroker) -> None:
    """Only the coordinators write __consumer_offsets: a client's batch there
    (possibly a decompression bomb the coordinator would replay) gets
    INVALID_TOPIC_EXCEPTION, as Kafka answers, and nothing is appended."""
    found = send(fresh_broker.bootstrap, ApiKey.FIND_COORDINATOR, 4,
                 {"key_type": 0, "coordinator_keys": ["g"]})
    assert found.coordinators[0].error_code == ErrorCode.none
    with WireClient(fresh_broker.bootstrap) as client:
        batch = build_batch([RecordSpec(key=b"k", value=b"v")])
        response = client.request(ApiKey.PRODUCE, 9,
                                  produce_request("__consumer_offsets", batch))
        partition = response.responses[0].partition_responses[0]
        assert partition.error_code == ErrorCode.invalid_topic_exception
        assert _latest_offset(client, "__consumer_offsets") == 0
