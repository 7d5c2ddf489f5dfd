"""Requests kio would mis-read, sent over raw sockets to a broker in a
subprocess (an allocation failure aborts the whole process, which would take
pytest with it): huge array counts (issue 13, finding 1) and nulls in
non-nullable arrays (finding 2). The sender loses its connection with one
WARNING line; the broker survives and serves everyone else."""

from __future__ import annotations

import dataclasses
import datetime
import random
import resource
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.describe_transactions.v0 import request as dt
from kio.schema.find_coordinator.v4 import request as fc
from kio.schema.join_group.v5 import request as jg
from kio.schema.list_transactions.v2 import request as lt
from kio.schema.metadata.v10 import request as md10
from kio.serial._introspect import classify_field, get_field_tag, is_optional

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey, request_class
from tests.fuzz.values import encode_body, encode_frame, entity_draw
from tests.process import StromProcess
from tests.wire import WireClient

HUGE_COMPACT_COUNT = bytes.fromhex("00000019001300070000000100016300ffffffff0f0000000000000000")
NULL_TOPICS = bytes.fromhex("0000001300250002000000010001630000000075300000")


def _legacy_huge_count() -> bytes:
    # CreateTopics v4 (int32 counts): 0x7fffffff topics, then a timeout and nothing else.
    body = struct.pack(">i", 0x7FFFFFFF) + struct.pack(">ib", 30000, 0)
    return encode_frame(ApiKey.CREATE_TOPICS, 4, 1, body, client_id="c")


# The APIs whose handlers raised TypeError on a null array at 0098471, at the
# version that reached the crash.
NULL_ARRAY_CASES = [
    (ApiKey.OFFSET_COMMIT, 9), (ApiKey.LIST_OFFSETS, 9), (ApiKey.DELETE_RECORDS, 2),
    (ApiKey.OFFSET_FETCH, 9), (ApiKey.LIST_GROUPS, 5), (ApiKey.CREATE_PARTITIONS, 3),
    (ApiKey.CONSUMER_GROUP_DESCRIBE, 1), (ApiKey.DESCRIBE_GROUPS, 6),
    (ApiKey.DESCRIBE_CONFIGS, 4), (ApiKey.FETCH, 17), (ApiKey.FIND_COORDINATOR, 6),
]


def _null_array_frames(api_key: ApiKey, version: int) -> list[tuple[str, bytes]]:
    """One frame per non-nullable top-level array of the request, set to null."""
    cls = request_class(api_key, version)
    value = entity_draw(cls)(random.Random(int(api_key) * 100 + version))
    frames: list[tuple[str, bytes]] = []
    for field in dataclasses.fields(cls):
        if get_field_tag(field) is None and classify_field(field).is_array \
                and not is_optional(field):
            body = encode_body(cls, dataclasses.replace(value, **{field.name: None}))
            frames.append((field.name, encode_frame(api_key, version, 7, body)))
    assert frames, (api_key, version)
    return frames


@pytest.fixture(scope="module")
def strom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StromProcess]:
    base: Path = tmp_path_factory.mktemp("malformed")
    # DEBUG: after the first of a kind, the broker logs closed connections at DEBUG
    # (strom.broker.log_limit); each test checks its own frame's reason.
    process = StromProcess(base / "data", overrides={"auto.create.topics.enable": "false",
                                                         "group.initial.rebalance.delay.ms": "0"},
                           log_level="DEBUG")
    process.start()
    assert process.proc is not None
    # Heuristic overcommit grants a 17 GB reservation on a machine with more RAM
    # than that, and the abort would depend on the machine: cap the address space
    # as a container's memory limit would, far above what the broker uses.
    limit = 8 << 30
    resource.prlimit(process.proc.pid, resource.RLIMIT_AS, (limit, limit))
    try:
        yield process
    finally:
        process.stop()


def _send_and_expect_close(strom: StromProcess, frame: bytes, reason: str = "malformed") -> str:
    """Send `frame`; the broker must close this connection, stay up, serve another
    client, and log nothing at ERROR. Returns what it logged meanwhile."""
    log_start = strom.log_path.stat().st_size
    with WireClient(strom.bootstrap) as client:
        client.send_raw(frame)
        assert client.is_closed_by_peer()
    with WireClient(strom.bootstrap) as other:
        response = other.request(ApiKey.API_VERSIONS, 3, ApiVersionsRequest(
            client_software_name="t", client_software_version="1"))
        assert response.error_code == ErrorCode.none
    assert strom.proc is not None and strom.proc.poll() is None, "broker died"
    with open(strom.log_path, "rb") as log:
        log.seek(log_start)
        logged = log.read().decode(errors="replace")
    assert "Traceback" not in logged and " ERROR " not in logged, logged
    assert ("WARNING" in logged or "DEBUG" in logged) and reason in logged, logged
    return logged


@pytest.mark.parametrize("frame", [HUGE_COMPACT_COUNT, _legacy_huge_count()],
                         ids=["compact-0xffffffff", "int32-0x7fffffff"])
def test_huge_array_count_closes_connection_only(strom: StromProcess, frame: bytes) -> None:
    logged = _send_and_expect_close(strom, frame)
    assert "longer than the request" in logged


def test_null_topics_in_create_partitions(strom: StromProcess) -> None:
    logged = _send_and_expect_close(strom, NULL_TOPICS)
    assert "null array" in logged


@pytest.mark.parametrize(("api_key", "version"), NULL_ARRAY_CASES,
                         ids=[f"{k.name}-v{v}" for k, v in NULL_ARRAY_CASES])
def test_null_array_in_non_nullable_field(strom: StromProcess, api_key: ApiKey,
                                          version: int) -> None:
    for _, frame in _null_array_frames(api_key, version):
        logged = _send_and_expect_close(strom, frame)
        assert "null array" in logged


def test_huge_count_in_a_consumer_subscription(strom: StromProcess) -> None:
    """JoinGroup's protocol metadata is the client's ConsumerProtocolSubscription,
    which the coordinator reads with kio too: topics count 0x7fffffff."""
    subscription = struct.pack(">hi", 0, 0x7FFFFFFF)

    def join(member_id: str) -> jg.JoinGroupRequest:
        return jg.JoinGroupRequest(
            group_id="g-huge-subscription", session_timeout=datetime.timedelta(seconds=10),
            rebalance_timeout=datetime.timedelta(seconds=10), member_id=member_id,
            group_instance_id=None, protocol_type="consumer",
            protocols=(jg.JoinGroupRequestProtocol(name="range", metadata=subscription),))

    log_start = strom.log_path.stat().st_size
    with WireClient(strom.bootstrap) as client:
        client.request(ApiKey.FIND_COORDINATOR, 4, fc.FindCoordinatorRequest(
            key_type=0, coordinator_keys=("g-huge-subscription",)))
        # The coordinator starts on first use: retry while it loads (bounded).
        deadline = time.monotonic() + 30
        while True:
            first = client.request(ApiKey.JOIN_GROUP, 5, join(""))
            if first.error_code not in (ErrorCode.not_coordinator,
                                        ErrorCode.coordinator_load_in_progress) \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.05)  # the client's retry backoff; there is no event to wait on
        assert first.error_code == ErrorCode.member_id_required
        client.send(ApiKey.JOIN_GROUP, 5, join(first.member_id))
        # Answered (the group works without knowing the topics) or closed; never a crash.
        try:
            client.receive(ApiKey.JOIN_GROUP, 5)
        except ConnectionError:
            pass
    with WireClient(strom.bootstrap) as other:
        response = other.request(ApiKey.API_VERSIONS, 3, ApiVersionsRequest(
            client_software_name="t", client_software_version="1"))
        assert response.error_code == ErrorCode.none
    assert strom.proc is not None and strom.proc.poll() is None, "broker died"
    with open(strom.log_path, "rb") as log:
        log.seek(log_start)
        logged = log.read().decode(errors="replace")
    assert "Traceback" not in logged and " ERROR " not in logged, logged


def test_metadata_v10_topic_by_id_is_refused(strom: StromProcess) -> None:
    """Found by the fuzzer: v10-v11 requests may carry a topic id, but their
    responses cannot name a topic by id alone (Kafka refuses them too)."""
    request = md10.MetadataRequest(
        topics=(md10.MetadataRequestTopic(topic_id=uuid.uuid4(), name=None),),
        allow_auto_topic_creation=False, include_cluster_authorized_operations=False,
        include_topic_authorized_operations=False)
    frame = encode_frame(ApiKey.METADATA, 10, 3, encode_body(md10.MetadataRequest, request))
    logged = _send_and_expect_close(strom, frame, reason="topic ids are not supported")
    assert "malformed" not in logged


def test_describe_transactions_of_unknown_id(strom: StromProcess) -> None:
    """Found by the fuzzer: an unknown transactional id has no start time (-1),
    which the response used to encode as null in a non-nullable field."""
    with WireClient(strom.bootstrap) as client:
        client.send(ApiKey.DESCRIBE_TRANSACTIONS, 0,
                    dt.DescribeTransactionsRequest(transactional_ids=("nope",)))
        frame = client.read_frame()
    # Read by hand: kio's reader refuses a negative timestamp (a kio limitation;
    # Kafka's own clients read the int64). Flexible version: correlation id,
    # header tags, throttle, compact count, then the state.
    offset = 4 + 1 + 4 + 1
    (error_code,) = struct.unpack_from(">h", frame, offset)
    offset += 2
    for _ in range(2):  # transactional id, state: compact strings, short here
        offset += frame[offset]
    (start_time,) = struct.unpack_from(">q", frame, offset + 4)
    # The coordinator may still be starting (it starts on first use).
    assert error_code in (ErrorCode.transactional_id_not_found, ErrorCode.not_coordinator,
                          ErrorCode.coordinator_load_in_progress)
    assert start_time == -1


def test_list_transactions_with_an_invalid_pattern(strom: StromProcess) -> None:
    """Found by the fuzzer: an id pattern that is no regular expression (KIP-1152)."""
    log_start = strom.log_path.stat().st_size
    with WireClient(strom.bootstrap) as client:
        response = client.request(ApiKey.LIST_TRANSACTIONS, 2, lt.ListTransactionsRequest(
            state_filters=(), producer_id_filters=(), transactional_id_pattern="(unclosed"))
    assert response.error_code == ErrorCode.invalid_regular_expression
    with open(strom.log_path, "rb") as log:
        log.seek(log_start)
        assert b"Traceback" not in log.read()
