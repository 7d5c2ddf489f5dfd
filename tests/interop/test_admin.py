"""Admin APIs: CreateTopics (with validate_only and its errors), DescribeConfigs,
AlterConfigs, IncrementalAlterConfigs, CreatePartitions, DeleteTopics,
DeleteRecords, DescribeCluster and ListOffsets, mostly through confluent-kafka's
AdminClient, topic creation through every client that has an admin API."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from .clients import (
    Rec,
    bootstrap_servers,
    consume,
    produce,
    produce_error,
    raw_fetch,
    wait_until,
    watermarks,
)
from .conftest import wait_topic_ready

pytestmark = pytest.mark.interop

# Kafka error codes
OFFSET_OUT_OF_RANGE = 1
UNKNOWN_TOPIC_OR_PARTITION = 3
MESSAGE_TOO_LARGE = 10
INVALID_TOPIC_EXCEPTION = 17
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_CONFIG = 40

# topic configs every Kafka broker describes (a subset of Kafka 4.x's list)
CORE_TOPIC_CONFIGS = {
    "cleanup.policy", "compression.type", "delete.retention.ms", "file.delete.delay.ms",
    "flush.messages", "flush.ms", "index.interval.bytes", "max.compaction.lag.ms",
    "max.message.bytes", "message.timestamp.type", "message.timestamp.before.max.ms",
    "message.timestamp.after.max.ms", "min.cleanable.dirty.ratio", "min.compaction.lag.ms",
    "min.insync.replicas", "preallocate", "retention.bytes", "retention.ms", "segment.bytes",
    "segment.index.bytes", "segment.jitter.ms", "segment.ms",
    "unclean.leader.election.enable",
}
DEFAULTISH = {ConfigSource.DEFAULT_CONFIG, ConfigSource.STATIC_BROKER_CONFIG,
              ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG}


def error_code(future: Any, timeout: float = 30) -> int:
    """The Kafka error code an admin future fails with (0: it succeeded)."""
    try:
        future.result(timeout=timeout)
        return 0
    except KafkaException as e:
        err = e.args[0]
        assert isinstance(err, KafkaError), e
        return int(err.code())


def topic_names(admin: Any) -> set[str]:
    return set(admin.list_topics(timeout=10).topics)  # all topics: never auto-creates


def describe(admin: Any, topic: str) -> dict[str, Any]:
    res = ConfigResource(ResourceType.TOPIC, topic)
    return dict(admin.describe_configs([res])[res].result(timeout=30))


def describe_when(admin: Any, topic: str, name: str, value: str) -> dict[str, Any]:
    """Describe once ``name`` has ``value``: Kafka answers DescribeConfigs from the
    broker's metadata image, which an alteration reaches shortly after it returns."""
    cfg: dict[str, Any] = {}

    def check() -> bool:
        nonlocal cfg
        cfg = describe(admin, topic)
        return bool(cfg[name].value == value)

    wait_until(check, 15, what=f"{name}={value}")
    return cfg


# ---------------------------------------------------------------- create


def test_create_topic_confluent(admin: Any, topic: str) -> None:
    assert error_code(admin.create_topics([NewTopic(topic, 5, 1)])[topic]) == 0
    wait_topic_ready(admin, topic, 5)
    t = admin.list_topics(timeout=10).topics[topic]
    assert sorted(t.partitions) == [0, 1, 2, 3, 4]
    for p in t.partitions.values():
        assert (p.leader, p.replicas, p.isrs) == (p.leader, [p.leader], [p.leader])


def test_create_topic_kafka_python(bootstrap: str, admin: Any, topic: str) -> None:
    from kafka.admin import KafkaAdminClient
    from kafka.admin import NewTopic as KNewTopic

    kadmin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        resp = kadmin.create_topics(
            [KNewTopic(topic, 4, 1, topic_configs={"retention.ms": "3600000"})])
        [t] = resp["topics"]
        assert (t["name"], t["error_code"]) == (topic, 0)
        # CreateTopics v5+: the response tells what was created
        assert (t["num_partitions"], t["replication_factor"]) == (4, 1)
        assert t["configs"]["retention.ms"]["value"] == "3600000"
        assert t["configs"]["cleanup.policy"]["value"] == "delete"
        wait_until(lambda: topic in kadmin.list_topics(), 15, what=f"{topic} listed")
        [desc] = kadmin.describe_topics([topic])
        assert desc["error_code"] == 0
        assert sorted(p["partition_index"] for p in desc["partitions"]) == [0, 1, 2, 3]
    finally:
        kadmin.close()
    wait_topic_ready(admin, topic, 4)


def test_create_topic_aiokafka(bootstrap: str, admin: Any, topic: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin import NewTopic as ANewTopic

    async def run() -> None:
        aadmin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await aadmin.start()
        try:
            resp = await aadmin.create_topics([ANewTopic(topic, 3, 1)])
            errors = [t[1] for t in resp.topic_errors]  # (name, error_code, ...)
            assert errors == [0], resp
            deadline = time.monotonic() + 15
            while topic not in await aadmin.list_topics():
                assert time.monotonic() < deadline, f"{topic} not listed"
                await asyncio.sleep(0.05)
            [desc] = await aadmin.describe_topics([topic])
            assert len(desc["partitions"]) == 3
        finally:
            await aadmin.close()

    asyncio.run(run())
    wait_topic_ready(admin, topic, 3)


def test_create_topic_broker_defaults(admin: Any, topic: str) -> None:
    """-1 partitions and replication factor: the broker's num.partitions (1) and
    default.replication.factor (1 on a single node, 3 on the local cluster)."""
    assert error_code(admin.create_topics([NewTopic(topic)])[topic]) == 0
    wait_topic_ready(admin, topic, 1)


def test_create_topic_validate_only(admin: Any, topic: str) -> None:
    fs = admin.create_topics([NewTopic(topic, 3, 1, config={"retention.ms": "1000"})],
                             validate_only=True)
    assert error_code(fs[topic]) == 0
    assert topic not in topic_names(admin)
    # errors are reported as if for real
    bad = admin.create_topics([NewTopic(topic, 3, 1, config={"no.such.config": "1"})],
                              validate_only=True)
    assert error_code(bad[topic]) == INVALID_CONFIG
    # and now for real
    assert error_code(admin.create_topics([NewTopic(topic, 3, 1)])[topic]) == 0
    wait_topic_ready(admin, topic, 3)
    again = admin.create_topics([NewTopic(topic, 3, 1)], validate_only=True)
    assert error_code(again[topic]) == TOPIC_ALREADY_EXISTS


def test_create_topic_errors(admin: Any, topic: str) -> None:
    assert error_code(admin.create_topics([NewTopic(topic, 2, 1)])[topic]) == 0
    # more replicas than the cluster has brokers (3 on a single node, as before)
    too_many = max(3, len(admin.list_topics(timeout=10).brokers) + 1)
    cases = {
        topic: (NewTopic(topic, 2, 1), TOPIC_ALREADY_EXISTS),
        f"{topic}-rf": (NewTopic(f"{topic}-rf", 1, too_many), INVALID_REPLICATION_FACTOR),
        f"{topic}-p0": (NewTopic(f"{topic}-p0", 0, 1), INVALID_PARTITIONS),
        f"{topic}-cfg": (NewTopic(f"{topic}-cfg", 1, 1, config={"no.such.config": "x"}),
                         INVALID_CONFIG),
        f"{topic}-val": (NewTopic(f"{topic}-val", 1, 1, config={"retention.ms": "soon"}),
                         INVALID_CONFIG),
        "bad/name": (NewTopic("bad/name", 1, 1), INVALID_TOPIC_EXCEPTION),
        "..": (NewTopic("..", 1, 1), INVALID_TOPIC_EXCEPTION),
    }
    fs = admin.create_topics([t for t, _ in cases.values()])
    got = {name: error_code(f) for name, f in fs.items()}
    assert got == {name: code for name, (_, code) in cases.items()}
    names = topic_names(admin)
    assert not (set(cases) - {topic}) & names


def test_auto_create_on_produce(bootstrap: str, admin: Any, topic: str) -> None:
    """auto.create.topics.enable=true: a producer's metadata request creates the
    topic with num.partitions (1)."""
    produce("confluent", bootstrap, topic, [Rec(0, b"k", b"v")])
    t = admin.list_topics(timeout=10).topics[topic]
    assert list(t.partitions) == [0]
    assert [r.value for r in consume("kafka-python", bootstrap, topic, 1)] == [b"v"]


# ---------------------------------------------------------------- configs


def test_describe_configs_defaults_and_overrides(admin: Any, topic: str,
                                                 create_topic: Any) -> None:
    create_topic(topic, 1, config={"max.message.bytes": "2048", "retention.ms": "3600000"})
    cfg = describe(admin, topic)
    missing = CORE_TOPIC_CONFIGS - set(cfg)
    assert not missing, f"not described: {sorted(missing)}"
    for name in ("max.message.bytes", "retention.ms"):
        assert cfg[name].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, name
        assert not cfg[name].is_default
    assert cfg["max.message.bytes"].value == "2048"
    assert cfg["retention.ms"].value == "3600000"
    for name in CORE_TOPIC_CONFIGS - {"max.message.bytes", "retention.ms"}:
        assert cfg[name].source in {s.value for s in DEFAULTISH}, (name, cfg[name].source)
        assert not cfg[name].is_read_only, name
    for name, value in {"cleanup.policy": "delete", "compression.type": "producer",
                        "message.timestamp.type": "CreateTime"}.items():
        assert (cfg[name].value, cfg[name].source) == (
            value, ConfigSource.DEFAULT_CONFIG.value), name
        assert cfg[name].is_default


def test_describe_configs_synonyms(admin: Any, topic: str, create_topic: Any) -> None:
    """A topic override lists the broker config it overrides among its synonyms."""
    create_topic(topic, 1, config={"max.message.bytes": "4096"})
    entry = describe(admin, topic)["max.message.bytes"]
    syn = list(entry.synonyms.values())
    assert (syn[0].name, syn[0].value, syn[0].source) == (
        "max.message.bytes", "4096", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert "message.max.bytes" in [s.name for s in syn[1:]]


def test_describe_configs_unknown_topic(admin: Any, topic: str) -> None:
    res = ConfigResource(ResourceType.TOPIC, topic)
    assert error_code(admin.describe_configs([res])[res]) == UNKNOWN_TOPIC_OR_PARTITION


def test_describe_broker_configs(bootstrap: str, admin: Any) -> None:
    node_id = admin.describe_cluster().result(timeout=30).nodes[0].id
    res = ConfigResource(ResourceType.BROKER, str(node_id))
    cfg = dict(admin.describe_configs([res])[res].result(timeout=30))
    assert cfg["message.max.bytes"].value == "1048588"
    assert cfg["num.partitions"].value == "1"
    assert cfg["auto.create.topics.enable"].value == "true"


def test_max_message_bytes_per_topic_is_enforced(bootstrap: str, admin: Any, topic: str,
                                                 create_topic: Any) -> None:
    create_topic(topic, 1)
    assert produce_error("confluent", bootstrap, topic, Rec(0, None, b"x" * 3000)) == 0
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("max.message.bytes", "1024",
                    incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([res])[res].result(timeout=30)
    describe_when(admin, topic, "max.message.bytes", "1024")
    # the new limit applies as soon as the broker has it
    wait_until(lambda: produce_error("confluent", bootstrap, topic,
                                     Rec(0, None, b"x" * 3000)) == MESSAGE_TOO_LARGE,
               15, what="3000 bytes refused under max.message.bytes=1024")
    assert produce_error("confluent", bootstrap, topic, Rec(0, None, b"y" * 500)) == 0
    assert watermarks(bootstrap, topic, 0) == (0, 2)
    got = consume("confluent", bootstrap, topic, 2)
    assert [r.value for r in got] == [b"x" * 3000, b"y" * 500]


def test_incremental_alter_configs(admin: Any, topic: str, create_topic: Any) -> None:
    create_topic(topic, 1, config={"max.message.bytes": "2048"})
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "1234567", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("max.message.bytes", None, incremental_operation=AlterConfigOpType.DELETE),
        ConfigEntry("cleanup.policy", "compact",
                    incremental_operation=AlterConfigOpType.APPEND),
    ])
    admin.incremental_alter_configs([res])[res].result(timeout=30)
    cfg = describe_when(admin, topic, "retention.ms", "1234567")
    assert (cfg["retention.ms"].value, cfg["retention.ms"].source) == (
        "1234567", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert cfg["max.message.bytes"].value == "1048588"
    assert cfg["max.message.bytes"].source in {s.value for s in DEFAULTISH}
    assert sorted(cfg["cleanup.policy"].value.split(",")) == ["compact", "delete"]

    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("cleanup.policy", "delete",
                    incremental_operation=AlterConfigOpType.SUBTRACT)])
    admin.incremental_alter_configs([res])[res].result(timeout=30)
    describe_when(admin, topic, "cleanup.policy", "compact")

    for name, value in (("retention.ms", "soon"), ("no.such.config", "1")):
        bad = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
            ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)])
        assert error_code(admin.incremental_alter_configs([bad])[bad]) == INVALID_CONFIG, name
    assert describe(admin, topic)["retention.ms"].value == "1234567"


def test_alter_configs_replaces_all_overrides(admin: Any, topic: str,
                                              create_topic: Any) -> None:
    """The legacy (non-incremental) AlterConfigs sets the topic's whole override set."""
    create_topic(topic, 1, config={"retention.ms": "3600000"})
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"segment.ms": "7200000"})
    with pytest.warns(DeprecationWarning):
        fs = admin.alter_configs([res])
    fs[res].result(timeout=30)
    cfg = describe_when(admin, topic, "segment.ms", "7200000")
    assert (cfg["segment.ms"].value, cfg["segment.ms"].source) == (
        "7200000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert cfg["retention.ms"].value == "604800000"
    assert cfg["retention.ms"].source in {s.value for s in DEFAULTISH}


def test_alter_configs_validate_only(admin: Any, topic: str, create_topic: Any) -> None:
    create_topic(topic, 1)
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([res], validate_only=True)[res].result(timeout=30)
    assert describe(admin, topic)["retention.ms"].source != \
        ConfigSource.DYNAMIC_TOPIC_CONFIG.value


# ---------------------------------------------------------------- partitions, deletion


def test_create_partitions(bootstrap: str, admin: Any, topic: str, create_topic: Any) -> None:
    create_topic(topic, 2)
    produce("confluent", bootstrap, topic, [Rec(0, b"a", b"0"), Rec(1, b"b", b"1")])
    fs = admin.create_partitions([NewPartitions(topic, 4)])
    assert error_code(fs[topic]) == 0
    wait_topic_ready(admin, topic, 4)
    produce("confluent", bootstrap, topic, [Rec(3, b"d", b"3"), Rec(2, b"c", b"2")])
    got = consume("confluent", bootstrap, topic, 4)
    assert [(r.partition, r.offset, r.value) for r in got] == [
        (0, 0, b"0"), (1, 0, b"1"), (2, 0, b"2"), (3, 0, b"3")]
    for count in (4, 3):
        fs = admin.create_partitions([NewPartitions(topic, count)])
        assert error_code(fs[topic]) == INVALID_PARTITIONS, count
    fs = admin.create_partitions([NewPartitions(f"{topic}-none", 3)])
    assert error_code(fs[f"{topic}-none"]) == UNKNOWN_TOPIC_OR_PARTITION


def test_create_partitions_validate_only(admin: Any, topic: str, create_topic: Any) -> None:
    create_topic(topic, 1)
    fs = admin.create_partitions([NewPartitions(topic, 3)], validate_only=True)
    assert error_code(fs[topic]) == 0
    assert len(admin.list_topics(timeout=10).topics[topic].partitions) == 1


def test_delete_topic(bootstrap: str, admin: Any, topic: str, create_topic: Any) -> None:
    create_topic(topic, 2)
    produce("confluent", bootstrap, topic, [Rec(0, b"k", b"old")])
    assert error_code(admin.delete_topics([topic])[topic]) == 0
    wait_until(lambda: topic not in topic_names(admin), 15, what=f"{topic} gone")
    assert error_code(admin.delete_topics([topic])[topic]) == UNKNOWN_TOPIC_OR_PARTITION
    # the name can be used again, for a new, empty topic (at the broker's
    # default.replication.factor, so that an acks=all producer meets
    # min.insync.replicas in a cluster too)
    wait_until(lambda: error_code(admin.create_topics([NewTopic(topic, 1, -1)])[topic]) == 0,
               15, what=f"{topic} created again")
    wait_topic_ready(admin, topic, 1)
    assert watermarks(bootstrap, topic, 0) == (0, 0)
    produce("confluent", bootstrap, topic, [Rec(0, b"k", b"new")])
    got = consume("confluent", bootstrap, topic, 1)
    assert [(r.offset, r.value) for r in got] == [(0, b"new")]


def test_delete_records(bootstrap: str, admin: Any, topic: str, create_topic: Any) -> None:
    from confluent_kafka import Consumer

    create_topic(topic, 2)
    produce("confluent", bootstrap, topic,
            [Rec(0, None, f"v{i}".encode()) for i in range(10)]
            + [Rec(1, None, f"w{i}".encode()) for i in range(3)])
    fs = admin.delete_records([TopicPartition(topic, 0, 4)])
    [(tp, f)] = fs.items()
    assert f.result(timeout=30).low_watermark == 4
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (4, 10)
        assert c.get_watermark_offsets(TopicPartition(topic, 1), timeout=10) == (0, 3)
    finally:
        c.close()
    got = [r for r in consume("confluent", bootstrap, topic, 9) if r.partition == 0]
    assert [(r.offset, r.value) for r in got] == [(i, f"v{i}".encode()) for i in range(4, 10)]
    assert raw_fetch(bootstrap, topic, 0, offset=2)[0] == OFFSET_OUT_OF_RANGE
    # to the high watermark (-1: "all of it")
    fs = admin.delete_records([TopicPartition(topic, 1, -1)])
    assert next(iter(fs.values())).result(timeout=30).low_watermark == 3
    # past the high watermark
    fs = admin.delete_records([TopicPartition(topic, 0, 11)])
    assert error_code(next(iter(fs.values()))) == OFFSET_OUT_OF_RANGE


# ---------------------------------------------------------------- cluster, offsets


def test_describe_cluster(bootstrap: str, admin: Any) -> None:
    from kafka.admin import KafkaAdminClient

    # every broker of the cluster is a bootstrap server here (one on a single node)
    servers = sorted(bootstrap_servers(bootstrap))
    desc = admin.describe_cluster().result(timeout=30)
    assert desc.cluster_id
    assert sorted((n.host, n.port) for n in desc.nodes) == servers
    assert len({n.id for n in desc.nodes}) == len(servers)
    assert desc.controller is not None
    # KIP-590: clients are told some live broker, which forwards what needs the controller
    assert desc.controller.id in {n.id for n in desc.nodes}

    kadmin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        kdesc = kadmin.describe_cluster()
    finally:
        kadmin.close()
    assert kdesc["cluster_id"] == desc.cluster_id
    assert sorted((b["host"], b["port"]) for b in kdesc["brokers"]) == servers

    md = admin.list_topics(timeout=10)
    assert md.cluster_id == desc.cluster_id
    assert md.controller_id in {n.id for n in desc.nodes}
    assert sorted((b.host, b.port) for b in md.brokers.values()) == servers


def test_list_offsets(bootstrap: str, admin: Any, topic: str, create_topic: Any) -> None:
    create_topic(topic, 2)
    base = (int(time.time()) - 600) * 1000
    deltas = [0, 4000, 2000, 1000]
    produce("confluent", bootstrap, topic,
            [Rec(0, None, b"x", timestamp=base + d) for d in deltas])
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    cases = [
        (p0, OffsetSpec.earliest(), 0),
        (p0, OffsetSpec.latest(), 4),
        (p0, OffsetSpec.for_timestamp(base + 1500), 1),
        (p0, OffsetSpec.for_timestamp(base + 4001), -1),
        (p0, OffsetSpec.max_timestamp(), 1),
        (p1, OffsetSpec.earliest(), 0),
        (p1, OffsetSpec.latest(), 0),
        (p1, OffsetSpec.for_timestamp(base), -1),
    ]
    for tp, spec, want in cases:
        [(_, f)] = admin.list_offsets({tp: spec}).items()
        info = f.result(timeout=30)
        assert info.offset == want, (tp.partition, spec)
        if spec == OffsetSpec.max_timestamp():
            assert info.timestamp == base + 4000
