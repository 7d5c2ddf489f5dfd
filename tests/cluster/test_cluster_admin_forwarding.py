"""Admin requests sent to a broker that is not the controller are forwarded to
the controller in an Envelope (KIP-590) and answered as if the controller had
been asked: real etcd, two real `strom serve` processes, raw requests (so the
request surely reaches the non-controller) and real clients bootstrapped to
the non-controller only. A forwarded change is in the forwarding broker's own
metadata when it answers. An Envelope from a client is refused by closing its
connection; the broker keeps serving. Every wait has a deadline."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.create_partitions.v3 import request as cp
from kio.schema.create_topics.v7 import request as ct
from kio.schema.delete_topics.v6 import request as dt
from kio.schema.describe_configs.v4 import request as dc
from kio.schema.envelope.v0.request import EnvelopeRequest
from kio.schema.metadata.v12 import request as md
from kio.schema.types import TopicName
from kio.static.primitive import i8, i16, i32, i32Timedelta

from strom.broker.forwarding import ANONYMOUS_PRINCIPAL
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from tests.cluster.etcd_process import EtcdCluster
from tests.cluster.test_cluster_brokers import WAIT, _broker, _cluster_of
from tests.interop.clients import wait_until
from tests.process import StromProcess
from tests.wire import WireClient, encode_request

TOPIC, BROKER = 2, 4
TIMEOUT = i32Timedelta.parse(datetime.timedelta(seconds=30))


@pytest.fixture(scope="module")
def roles(tmp_path_factory: pytest.TempPathFactory, etcd_bin: str
          ) -> Iterator[tuple[StromProcess, StromProcess]]:
    """(controller, other broker), both registered; shared by this module's tests."""
    tmp_path = tmp_path_factory.mktemp("admin-forwarding")
    etcd = EtcdCluster(etcd_bin, tmp_path, size=1)
    started: list[StromProcess] = []
    try:
        etcd.start()
        started = [_broker(tmp_path, etcd, node_id) for node_id in (1, 2)]
        for broker in started:
            broker.start(timeout=WAIT)
        metadata = wait_until(lambda: _cluster_of(started[0].bootstrap, 2), WAIT,
                              what="both brokers registered")
        by_id = {1: started[0], 2: started[1]}
        yield by_id[metadata.controller_id], by_id[3 - metadata.controller_id]
    finally:
        for broker in started:
            broker.stop()
        etcd.stop()


@pytest.fixture(scope="module")
def etcd_bin() -> str:
    from tests.cluster.etcd_process import etcd_binary
    binary = etcd_binary()
    if binary is None:
        pytest.skip("no etcd binary: run scripts/install-etcd.sh (make test does)")
    return binary


def _node_id(broker: StromProcess) -> int:
    return int(broker.overrides["node.id"])


def _metadata(client: WireClient, topic: str) -> Any:
    request = md.MetadataRequest(
        topics=(md.MetadataRequestTopic(name=TopicName(topic), topic_id=None),),
        allow_auto_topic_creation=False, include_topic_authorized_operations=False)
    (found,) = client.request(ApiKey.METADATA, 12, request).topics
    return found


def _topic_configs(client: WireClient, topic: str) -> dict[str, Any]:
    request = dc.DescribeConfigsRequest(resources=(dc.DescribeConfigsResource(
        resource_type=i8(TOPIC), resource_name=topic, configuration_keys=None),))
    (result,) = client.request(ApiKey.DESCRIBE_CONFIGS, 4, request).results
    assert result.error_code == ErrorCode.none, result
    return {c.name: c for c in result.configs}


def _create(name: str, partitions: int, **configs: str) -> ct.CreateTopicsRequest:
    return ct.CreateTopicsRequest(topics=(ct.CreatableTopic(
        name=TopicName(name), num_partitions=i32(partitions), replication_factor=i16(-1),
        assignments=(), configs=tuple(ct.CreatableTopicConfig(name=k, value=v)
                                      for k, v in configs.items())),),
        timeout=TIMEOUT, validate_only=False)


def test_topic_admin_through_the_non_controller(
        roles: tuple[StromProcess, StromProcess]) -> None:
    """Raw requests to the non-controller; without forwarding each answers
    NOT_CONTROLLER. Metadata right after, on the same broker, sees each change."""
    controller, other = roles
    with WireClient(other.bootstrap, timeout=WAIT) as client:
        created = client.request(ApiKey.CREATE_TOPICS, 7,
                                 _create("fwd-topic", 2, **{"retention.ms": "3600000"}))
        (result,) = created.topics
        assert result.error_code == ErrorCode.none, result
        assert result.num_partitions == 2 and result.topic_id != uuid.UUID(int=0)
        seen = _metadata(client, "fwd-topic")
        assert seen.error_code == ErrorCode.none and seen.topic_id == result.topic_id
        assert len(seen.partitions) == 2

        again = client.request(ApiKey.CREATE_TOPICS, 7, _create("fwd-topic", 2))
        assert again.topics[0].error_code == ErrorCode.topic_already_exists

        validate = ct.CreateTopicsRequest(topics=_create("fwd-never", 1).topics,
                                          timeout=TIMEOUT, validate_only=True)
        assert client.request(ApiKey.CREATE_TOPICS, 7,
                              validate).topics[0].error_code == ErrorCode.none
        assert _metadata(client, "fwd-never").error_code == \
            ErrorCode.unknown_topic_or_partition

        grow = cp.CreatePartitionsRequest(topics=(cp.CreatePartitionsTopic(
            name=TopicName("fwd-topic"), count=i32(5), assignments=None),),
            timeout=TIMEOUT, validate_only=False)
        (grown,) = client.request(ApiKey.CREATE_PARTITIONS, 3, grow).results
        assert grown.error_code == ErrorCode.none, grown
        assert len(_metadata(client, "fwd-topic").partitions) == 5

        delete = dt.DeleteTopicsRequest(topics=(dt.DeleteTopicState(
            name=TopicName("fwd-topic"), topic_id=None),), timeout=TIMEOUT)
        (deleted,) = client.request(ApiKey.DELETE_TOPICS, 6, delete).responses
        assert deleted.error_code == ErrorCode.none, deleted
        assert _metadata(client, "fwd-topic").error_code == \
            ErrorCode.unknown_topic_or_partition
    with WireClient(controller.bootstrap, timeout=WAIT) as client:
        assert _metadata(client, "fwd-topic").error_code == \
            ErrorCode.unknown_topic_or_partition


# --- Envelopes from clients and malformed ones ---------------------------------------


def _envelope(embedded: bytes, address: bytes = b"\x7f\x00\x00\x01") -> EnvelopeRequest:
    return EnvelopeRequest(request_data=embedded, request_principal=ANONYMOUS_PRINCIPAL,
                           client_host_address=address)


def _embedded(api_key: int, version: int, body: Any) -> bytes:
    return encode_request(api_key, version, 77, body)[4:]


def _send_envelope(bootstrap: str, envelope: EnvelopeRequest, client_id: str) -> Any:
    """The Envelope response, or None when the broker closed the connection."""
    with WireClient(bootstrap, timeout=WAIT) as client:
        client.send_raw(encode_request(ApiKey.ENVELOPE, 0, 1, envelope, client_id=client_id))
        try:
            _, response = client.receive(ApiKey.ENVELOPE, 0)
        except ConnectionError:
            return None
        return response


def test_envelope_from_a_client_is_refused(
        roles: tuple[StromProcess, StromProcess]) -> None:
    controller, other = roles
    hostile = _envelope(_embedded(ApiKey.CREATE_TOPICS, 7, _create("smuggled", 1)))
    for client_id in ("strom-tests", "strom-broker-99", "strom-broker-x"):
        assert _send_envelope(controller.bootstrap, hostile, client_id) is None, client_id
    with WireClient(controller.bootstrap, timeout=WAIT) as client:
        # Still serving, and nothing was created.
        assert _metadata(client, "smuggled").error_code == \
            ErrorCode.unknown_topic_or_partition
        versions = client.request(ApiKey.API_VERSIONS, 3, ApiVersionsRequest(
            client_software_name="strom-tests", client_software_version="0"))
        assert ApiKey.ENVELOPE not in {k.api_key for k in versions.api_keys}


def test_malformed_envelopes_get_kafkas_errors(
        roles: tuple[StromProcess, StromProcess]) -> None:
    controller, other = roles
    as_broker = f"strom-broker-{_node_id(other)}"
    create = _embedded(ApiKey.CREATE_TOPICS, 7, _create("enveloped", 1))
    # Only the controller takes them.
    assert _send_envelope(other.bootstrap, _envelope(create), as_broker).error_code == \
        ErrorCode.not_controller
    # An API that is never forwarded.
    metadata = _embedded(ApiKey.METADATA, 12, md.MetadataRequest(
        topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False))
    assert _send_envelope(controller.bootstrap, _envelope(metadata), as_broker).error_code \
        == ErrorCode.invalid_request
    # A request that cannot be read, and an address that is none.
    assert _send_envelope(controller.bootstrap, _envelope(create[:12]),
                          as_broker).error_code == ErrorCode.unsupported_version
    assert _send_envelope(controller.bootstrap, _envelope(create, b"\x01\x02\x03"),
                          as_broker).error_code == ErrorCode.invalid_request
    # A well-formed one from a broker is handled: the embedded answer carries
    # the embedded request's correlation id.
    answer = _send_envelope(controller.bootstrap, _envelope(create), as_broker)
    assert answer.error_code == ErrorCode.none
    assert answer.response_data[:4] == (77).to_bytes(4, "big")
    with WireClient(other.bootstrap, timeout=WAIT) as client:
        wait_until(lambda: _metadata(client, "enveloped").error_code == ErrorCode.none,
                   WAIT, what="enveloped topic seen by the other broker")
