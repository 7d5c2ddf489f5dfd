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
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)
from kio.schema.alter_configs.v2 import request as ac
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.create_partitions.v3 import request as cp
from kio.schema.create_topics.v7 import request as ct
from kio.schema.delete_topics.v6 import request as dt
from kio.schema.describe_configs.v4 import request as dc
from kio.schema.envelope.v0.request import EnvelopeRequest
from kio.schema.incremental_alter_configs.v1 import request as iac
from kio.schema.metadata.v12 import request as md
from kio.schema.types import TopicName
from kio.static.primitive import i8, i16, i32, i32Timedelta

from strom.broker.envelope_data import ANONYMOUS_PRINCIPAL
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.protocol.records import RecordSpec, build_batch
from tests.cluster.brokers import WAIT, cluster_broker, cluster_of
from tests.cluster.etcd_process import EtcdCluster
from tests.interop.clients import run_kafka_tool, wait_until
from tests.process import StromProcess
from tests.wire import WireClient, encode_request, produce_request

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
        started = [cluster_broker(tmp_path, etcd, node_id) for node_id in (1, 2)]
        for broker in started:
            broker.start(timeout=WAIT)
        metadata = wait_until(lambda: cluster_of(started[0].bootstrap, 2), WAIT,
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


# --- configs ---------------------------------------------------------------------------


def _incremental(client: WireClient, *resources: tuple[int, str, list[tuple[str, int, str | None]]]
                 ) -> list[Any]:
    request = iac.IncrementalAlterConfigsRequest(resources=tuple(
        iac.AlterConfigsResource(resource_type=i8(kind), resource_name=name, configs=tuple(
            iac.AlterableConfig(name=n, config_operation=i8(op), value=v) for n, op, v in ops))
        for kind, name, ops in resources), validate_only=False)
    return list(client.request(ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, request).responses)


def _broker_configs(client: WireClient, name: str, key: str) -> Any:
    request = dc.DescribeConfigsRequest(resources=(dc.DescribeConfigsResource(
        resource_type=i8(BROKER), resource_name=name, configuration_keys=(key,)),),
        include_synonyms=True)
    (result,) = client.request(ApiKey.DESCRIBE_CONFIGS, 4, request).results
    assert result.error_code == ErrorCode.none, result
    return {c.name: c for c in result.configs}.get(key)


SET, DELETE = 0, 1
DYNAMIC_TOPIC, DYNAMIC_BROKER, DYNAMIC_DEFAULT = 1, 2, 3  # Kafka's ConfigSource ids


def test_topic_configs_through_the_non_controller(
        roles: tuple[StromProcess, StromProcess]) -> None:
    controller, other = roles
    with WireClient(other.bootstrap, timeout=WAIT) as client:
        assert client.request(ApiKey.CREATE_TOPICS, 7, _create("fwd-configs", 1)
                              ).topics[0].error_code == ErrorCode.none
        # One request, resources answered in order: forwarded, refused here
        # (a broker names only itself), and a logger level changed here.
        answers = _incremental(
            client,
            (TOPIC, "fwd-configs", [("retention.ms", SET, "7200000")]),
            (BROKER, str(_node_id(controller)), [("log.retention.ms", SET, "1")]),
            (8, str(_node_id(other)), [("strom.broker.forwarding", SET, "INFO")]))
        assert [(a.resource_name, a.error_code) for a in answers] == [
            ("fwd-configs", ErrorCode.none),
            (str(_node_id(controller)), ErrorCode.invalid_request),
            (str(_node_id(other)), ErrorCode.none)]
        assert answers[1].error_message == (f"Unexpected node id. Expected "
                                            f"{_node_id(other)}, but received "
                                            f"{_node_id(controller)}")
        assert _topic_configs(client, "fwd-configs")["retention.ms"].value == "7200000"

        legacy = ac.AlterConfigsRequest(resources=(ac.AlterConfigsResource(
            resource_type=i8(TOPIC), resource_name="fwd-configs",
            configs=(ac.AlterableConfig(name="cleanup.policy", value="compact"),)),),
            validate_only=False)
        (replaced,) = client.request(ApiKey.ALTER_CONFIGS, 2, legacy).responses
        assert replaced.error_code == ErrorCode.none, replaced
        seen = _topic_configs(client, "fwd-configs")
        assert seen["cleanup.policy"].value == "compact"
        assert "retention.ms" not in {name for name, c in seen.items()
                                      if c.config_source == DYNAMIC_TOPIC}  # replaced
        # An error the controller finds is the client's answer.
        (bad,) = _incremental(client, (TOPIC, "fwd-configs", [("retention.ms", SET, "x")]))
        assert bad.error_code == ErrorCode.invalid_config
    with WireClient(controller.bootstrap, timeout=WAIT) as client:
        assert _topic_configs(client, "fwd-configs")["cleanup.policy"].value == "compact"


def test_broker_configs_apply_on_every_broker(
        roles: tuple[StromProcess, StromProcess]) -> None:
    """A cluster default changed through one broker takes effect on the
    other; a broker's own config on that broker only."""
    controller, other = roles
    with WireClient(other.bootstrap, timeout=WAIT) as client:
        assert client.request(ApiKey.CREATE_TOPICS, 7, _create("fwd-limits", 2)
                              ).topics[0].error_code == ErrorCode.none
        leaders = {p.partition_index: p.leader_id
                   for p in _metadata(client, "fwd-limits").partitions}
        (default,) = _incremental(client, (BROKER, "", [("message.max.bytes", SET, "2000"),
                                                        ("log.retention.ms", SET, "5000000")]))
        assert default.error_code == ErrorCode.none, default
        (own,) = _incremental(client, (BROKER, str(_node_id(other)),
                                       [("log.retention.ms", SET, "6000000")]))
        assert own.error_code == ErrorCode.none, own
        # Here: the broker's own value over the default.
        entry = _broker_configs(client, str(_node_id(other)), "log.retention.ms")
        assert (entry.value, entry.config_source) == ("6000000", DYNAMIC_BROKER)
        assert _topic_configs(client, "fwd-limits")["retention.ms"].value == "6000000"
    try:
        with WireClient(controller.bootstrap, timeout=WAIT) as client:
            # There: the default only, as DescribeConfigs says and produce enforces.
            entry = _broker_configs(client, "", "message.max.bytes")
            assert (entry.value, entry.config_source) == ("2000", DYNAMIC_DEFAULT)
            entry = _broker_configs(client, str(_node_id(controller)), "log.retention.ms")
            assert (entry.value, entry.config_source) == ("5000000", DYNAMIC_DEFAULT)
            assert _topic_configs(client, "fwd-limits")["retention.ms"].value == "5000000"
            partition = next(p for p, leader in leaders.items()
                             if leader == _node_id(controller))
            batch = build_batch([RecordSpec(value=b"x" * 5000)])
            response = client.request(ApiKey.PRODUCE, 9, produce_request(
                "fwd-limits", batch, partition=partition))
            error = response.responses[0].partition_responses[0].error_code
            assert error == ErrorCode.message_too_large
    finally:
        with WireClient(other.bootstrap, timeout=WAIT) as client:
            _incremental(client, (BROKER, "", [("message.max.bytes", DELETE, None),
                                               ("log.retention.ms", DELETE, None)]),
                         (BROKER, str(_node_id(other)), [("log.retention.ms", DELETE, None)]))


# --- real clients, bootstrapped to the non-controller only -----------------------------


def test_confluent_admin_through_the_non_controller(
        roles: tuple[StromProcess, StromProcess]) -> None:
    controller, other = roles
    admin = AdminClient({"bootstrap.servers": other.bootstrap})
    admin.create_topics([NewTopic("fwd-confluent", 2)])["fwd-confluent"].result(WAIT)
    admin.create_partitions([NewPartitions("fwd-confluent", 3)])["fwd-confluent"].result(WAIT)
    topic = ConfigResource(ResourceType.TOPIC, "fwd-confluent", incremental_configs=[
        ConfigEntry("retention.ms", "1234567", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([topic])[topic].result(WAIT)
    # A broker's own config is sent to that broker, which forwards it.
    own = ConfigResource(ResourceType.BROKER, str(_node_id(other)), incremental_configs=[
        ConfigEntry("log.retention.ms", "7654321", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([own])[own].result(WAIT)
    try:
        described = admin.describe_configs([ConfigResource(ResourceType.BROKER,
                                                           str(_node_id(other)))])
        entry = next(iter(described.values())).result(WAIT)["log.retention.ms"]
        assert (entry.value, entry.source) == ("7654321", DYNAMIC_BROKER)
        with WireClient(other.bootstrap, timeout=WAIT) as client:
            assert len(_metadata(client, "fwd-confluent").partitions) == 3
            assert _topic_configs(client, "fwd-confluent")["retention.ms"].value == "1234567"
        admin.delete_topics(["fwd-confluent"])["fwd-confluent"].result(WAIT)
        with WireClient(controller.bootstrap, timeout=WAIT) as client:
            assert _metadata(client, "fwd-confluent").error_code == \
                ErrorCode.unknown_topic_or_partition
    finally:
        reset = ConfigResource(ResourceType.BROKER, str(_node_id(other)), incremental_configs=[
            ConfigEntry("log.retention.ms", None,
                        incremental_operation=AlterConfigOpType.DELETE)])
        admin.incremental_alter_configs([reset])[reset].result(WAIT)


def test_kafka_tools_through_the_non_controller(
        roles: tuple[StromProcess, StromProcess]) -> None:
    controller, other = roles
    bootstrap = ("--bootstrap-server", other.bootstrap)
    run_kafka_tool("topics", *bootstrap, "--create", "--topic", "fwd-java",
                   "--partitions", "1", "--config", "retention.ms=3600000")
    run_kafka_tool("topics", *bootstrap, "--alter", "--topic", "fwd-java", "--partitions", "2")
    run_kafka_tool("configs", *bootstrap, "--alter", "--entity-type", "topics",
                   "--entity-name", "fwd-java", "--add-config", "retention.ms=7200000")
    run_kafka_tool("configs", *bootstrap, "--alter", "--entity-type", "brokers",
                   "--entity-name", str(_node_id(other)), "--add-config",
                   "log.cleaner.backoff.ms=16000")
    try:
        with WireClient(other.bootstrap, timeout=WAIT) as client:
            assert len(_metadata(client, "fwd-java").partitions) == 2
            assert _topic_configs(client, "fwd-java")["retention.ms"].value == "7200000"
            entry = _broker_configs(client, str(_node_id(other)), "log.cleaner.backoff.ms")
            assert (entry.value, entry.config_source) == ("16000", DYNAMIC_BROKER)
        run_kafka_tool("topics", *bootstrap, "--delete", "--topic", "fwd-java")
        with WireClient(controller.bootstrap, timeout=WAIT) as client:
            assert _metadata(client, "fwd-java").error_code == \
                ErrorCode.unknown_topic_or_partition
    finally:
        run_kafka_tool("configs", *bootstrap, "--alter", "--entity-type", "brokers",
                       "--entity-name", str(_node_id(other)), "--delete-config",
                       "log.cleaner.backoff.ms")


# --- the controller goes away while a request waits --------------------------------------


def test_forwarding_outlives_the_controller(etcd: EtcdCluster, tmp_path: Path) -> None:
    """The controller is killed (kill -9): the other broker's image names it
    until its lease expires, so the forwarded request meets refused
    connections, asks again, and is handled by the new controller (this
    broker). The client only waits."""
    started = [cluster_broker(tmp_path, etcd, node_id) for node_id in (1, 2)]
    try:
        for broker in started:
            broker.start(timeout=WAIT)
        metadata = wait_until(lambda: cluster_of(started[0].bootstrap, 2), WAIT,
                              what="both brokers registered")
        controller = started[metadata.controller_id - 1]
        other = started[2 - metadata.controller_id]
        controller.kill()
        with WireClient(other.bootstrap, timeout=WAIT) as client:
            created = client.request(ApiKey.CREATE_TOPICS, 7, _create("after-the-fall", 1))
            assert created.topics[0].error_code == ErrorCode.none, created
            assert _metadata(client, "after-the-fall").error_code == ErrorCode.none
    finally:
        for broker in started:
            broker.stop()
