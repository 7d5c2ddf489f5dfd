"""Apache Kafka's own command-line tools (the Java ones from kafka-tools and
kafka_2.13), run through scripts/kafka-tool."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from .clients import murmur2_partition, run_kafka_tool, wait_until

pytestmark = [pytest.mark.interop, pytest.mark.java]


@pytest.fixture(autouse=True)
def _java(java_tools: Any) -> None:
    pass


def topics(bootstrap: str, *args: str, check: bool = True) -> Any:
    return run_kafka_tool("topics", "--bootstrap-server", bootstrap, *args, check=check)


def listed(bootstrap: str) -> set[str]:
    return set(topics(bootstrap, "--list").stdout.split())


def test_kafka_topics_create_describe_alter_list_delete(bootstrap: str, topic: str) -> None:
    out = topics(bootstrap, "--create", "--topic", topic, "--partitions", "3",
                 "--replication-factor", "1", "--config", "retention.ms=3600000").stdout
    assert f"Created topic {topic}." in out
    assert topic in listed(bootstrap)

    desc = topics(bootstrap, "--describe", "--topic", topic).stdout
    head, *parts = [line.strip() for line in desc.splitlines() if line.strip()]
    assert f"Topic: {topic}" in head
    assert "PartitionCount: 3" in head
    assert "ReplicationFactor: 1" in head
    assert "retention.ms=3600000" in head
    assert len(parts) == 3
    for i, line in enumerate(parts):
        fields = dict(re.findall(r"(\w+): (\S*)", line))
        assert fields["Partition"] == str(i)
        assert fields["Leader"] == fields["Replicas"] == fields["Isr"]
        assert int(fields["Leader"]) >= 0

    again = topics(bootstrap, "--create", "--topic", topic, "--partitions", "3", check=False)
    assert again.returncode != 0
    assert "already exists" in again.stdout + again.stderr

    topics(bootstrap, "--alter", "--topic", topic, "--partitions", "5")
    wait_until(lambda: "PartitionCount: 5" in topics(bootstrap, "--describe", "--topic",
                                                      topic).stdout,
               20, what="5 partitions")

    topics(bootstrap, "--delete", "--topic", topic)
    wait_until(lambda: topic not in listed(bootstrap), 20, what=f"{topic} deleted")
    missing = topics(bootstrap, "--describe", "--topic", topic, check=False)
    assert missing.returncode != 0
    assert "does not exist" in missing.stdout + missing.stderr


def test_console_producer_keys_console_consumer_print_key(bootstrap: str, topic: str) -> None:
    topics(bootstrap, "--create", "--topic", topic, "--partitions", "2")
    lines = [f"key{i}\tvalue {i}" for i in range(10)]
    run_kafka_tool("console-producer", "--bootstrap-server", bootstrap, "--topic", topic,
                   "--reader-property", "parse.key=true", input="\n".join(lines) + "\n")
    out = run_kafka_tool(
        "console-consumer", "--bootstrap-server", bootstrap, "--topic", topic,
        "--from-beginning", "--max-messages", "10", "--timeout-ms", "30000",
        "--formatter-property", "print.key=true",
        "--formatter-property", "print.partition=true",
    ).stdout
    got = [line.split("\t") for line in out.splitlines() if line.startswith("Partition:")]
    assert sorted((k, v) for _, k, v in got) == sorted(tuple(x.split("\t")) for x in lines)
    # keyed records go where the Java partitioner puts them, in order within a partition
    for p in (0, 1):
        want = [x.split("\t")[1] for x in lines
                if murmur2_partition(x.split("\t")[0].encode(), 2) == p]
        assert [v for part, _, v in got if part == f"Partition:{p}"] == want


def test_kafka_get_offsets(bootstrap: str, topic: str) -> None:
    topics(bootstrap, "--create", "--topic", topic, "--partitions", "2")
    run_kafka_tool("console-producer", "--bootstrap-server", bootstrap, "--topic", topic,
                   "--reader-property", "parse.key=true",
                   input="".join(f"key{i}\tv{i}\n" for i in range(9)))
    out = run_kafka_tool("get-offsets", "--bootstrap-server", bootstrap,
                         "--topic-partitions", f"{topic}:0,{topic}:1").stdout
    ends = {int(p): int(o) for _, p, o in (line.rsplit(":", 2) for line in out.split())}
    want0 = sum(1 for i in range(9) if murmur2_partition(f"key{i}".encode(), 2) == 0)
    assert ends == {0: want0, 1: 9 - want0}


def test_kafka_configs(bootstrap: str, topic: str) -> None:
    topics(bootstrap, "--create", "--topic", topic, "--partitions", "1")

    def configs(*args: str) -> str:
        return str(run_kafka_tool("configs", "--bootstrap-server", bootstrap,
                                  "--entity-type", "topics", "--entity-name", topic,
                                  *args).stdout)

    def described_when(ok: Callable[[str], bool], what: str) -> str:
        # the broker describes its metadata image, which a change reaches shortly after
        out = ""

        def check() -> bool:
            nonlocal out
            out = configs("--describe")
            return ok(out)

        wait_until(check, 15, what=what)
        return out

    configs("--alter", "--add-config", "max.message.bytes=2048,retention.ms=3600000")
    out = described_when(lambda o: "retention.ms=3600000" in o, "retention.ms described")
    assert "max.message.bytes=2048" in out
    assert "DYNAMIC_TOPIC_CONFIG:max.message.bytes=2048" in out
    configs("--alter", "--delete-config", "retention.ms")
    out = described_when(lambda o: "retention.ms" not in o, "retention.ms override gone")
    assert "max.message.bytes=2048" in out
    full = configs("--describe", "--all")
    assert "cleanup.policy=delete" in full
    assert "retention.ms=604800000" in full


def test_consumer_groups(bootstrap: str, topic: str) -> None:
    """A console consumer in a named group commits its offsets; kafka-consumer-groups
    lists the group, describes its offsets and lag, and resets them."""
    group = f"{topic}-group"
    topics(bootstrap, "--create", "--topic", topic, "--partitions", "2")
    run_kafka_tool("console-producer", "--bootstrap-server", bootstrap, "--topic", topic,
                   "--reader-property", "parse.key=true",
                   input="".join(f"key{i}\tv{i}\n" for i in range(8)))
    run_kafka_tool("console-consumer", "--bootstrap-server", bootstrap, "--topic", topic,
                   "--group", group, "--from-beginning", "--max-messages", "8",
                   "--timeout-ms", "30000")

    def groups(*args: str) -> str:
        return str(run_kafka_tool("consumer-groups", "--bootstrap-server", bootstrap,
                                  *args).stdout)

    assert group in groups("--list").split()

    def offsets() -> dict[int, tuple[int, int, int]]:
        out = groups("--describe", "--group", group)
        rows = {}
        for line in out.splitlines():
            cols = line.split()
            if len(cols) >= 6 and cols[0] == group and cols[1] == topic:
                rows[int(cols[2])] = (int(cols[3]), int(cols[4]), int(cols[5]))
        return rows

    n0 = sum(1 for i in range(8) if murmur2_partition(f"key{i}".encode(), 2) == 0)
    assert offsets() == {0: (n0, n0, 0), 1: (8 - n0, 8 - n0, 0)}

    groups("--reset-offsets", "--group", group, "--topic", topic, "--to-earliest", "--execute")
    assert offsets() == {0: (0, n0, n0), 1: (0, 8 - n0, 8 - n0)}


def test_perf_tools(bootstrap: str, topic: str) -> None:
    topics(bootstrap, "--create", "--topic", topic, "--partitions", "2")
    out = run_kafka_tool("producer-perf", "--bootstrap-server", bootstrap, "--topic", topic,
                         "--num-records", "5000", "--record-size", "200", "--throughput",
                         "-1", "--producer-props", "acks=all", "linger.ms=5").stdout
    assert re.search(r"^5000 records sent", out, re.M), out
    out = run_kafka_tool("consumer-perf", "--bootstrap-server", bootstrap, "--topic", topic,
                         "--num-records", "5000", "--timeout", "30000").stdout
    # header line, then: start, end, MB, MB/s, nMsg, nMsg/s, ...
    row = out.strip().splitlines()[-1].split(",")
    assert int(row[4].strip()) >= 5000, out
