"""Consumer groups with Apache Kafka's own Java client and tools (scripts/kafka-tool):
the console consumer in a group (classic and KIP-848), kafka-consumer-groups
(list, describe with lag, reset offsets, delete), and kafka-dump-log reading
`__consumer_offsets` as strom wrote it."""

from __future__ import annotations

import re
import subprocess
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from strom.coordinator.group.service import partition_for
from strom.testing import EmbeddedBroker

from .clients import KAFKA_TOOL, run_kafka_tool, wait_until
from .test_groups import (
    EXTERNAL,
    GROUP_OVERRIDES,
    PARTITIONS,
    create,
    gbootstrap,
    group_broker,
    produce,
    topic6,
)

pytestmark = [pytest.mark.interop, pytest.mark.java]
__all__ = ["gbootstrap", "group_broker", "topic6"]  # fixtures used here


@pytest.fixture(autouse=True)
def _java(java_tools: Any) -> None:
    pass


def groups_tool(bootstrap: str, *args: str) -> str:
    return str(run_kafka_tool("consumer-groups", "--bootstrap-server", bootstrap, *args).stdout)


def offsets(bootstrap: str, group: str, topic: str) -> dict[int, tuple[int, int, int]]:
    """partition -> (current offset, log end offset, lag) as kafka-consumer-groups shows."""
    rows = {}
    for line in groups_tool(bootstrap, "--describe", "--group", group).splitlines():
        cols = line.split()
        if len(cols) >= 6 and cols[0] == group and cols[1] == topic:
            rows[int(cols[2])] = (int(cols[3]), int(cols[4]), int(cols[5]))
    return rows


def offsets_leader(bootstrap: str, group: str) -> int:
    """The node id leading the group's partition of __consumer_offsets."""
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(
        "__consumer_offsets", timeout=10)
    partitions = md.topics["__consumer_offsets"].partitions
    return int(partitions[partition_for(group, len(partitions))].leader)


def console_consume(bootstrap: str, topic: str, group: str, count: int,
                    *extra: str) -> list[str]:
    proc = run_kafka_tool(
        "console-consumer", "--bootstrap-server", bootstrap, "--topic", topic,
        "--group", group, "--from-beginning", "--max-messages", str(count),
        "--timeout-ms", "30000", *extra, timeout=90)
    return [line for line in proc.stdout.splitlines() if line]


def test_consumer_groups_tool_lists_describes_and_resets(gbootstrap: str, topic6: str) -> None:
    group = f"java-{uuid.uuid4().hex[:8]}"
    before = datetime.now(UTC)  # earlier than every record's timestamp
    produce(gbootstrap, topic6, [f"v{i}" for i in range(12)])  # 2 per partition
    assert len(console_consume(gbootstrap, topic6, group, 12)) == 12
    assert group in groups_tool(gbootstrap, "--list").split()
    assert offsets(gbootstrap, group, topic6) == {p: (2, 2, 0) for p in range(PARTITIONS)}
    state = groups_tool(gbootstrap, "--describe", "--group", group, "--state")
    row = re.search(rf"^{group}\s+\S+\s+\((\d+)\)\s+\S+\s+Empty\s+0\s*$", state, re.M)
    assert row, state
    # the coordinator is the leader of the group's __consumer_offsets partition
    assert int(row.group(1)) == offsets_leader(gbootstrap, group), state

    produce(gbootstrap, topic6, [f"w{i}" for i in range(6)])  # one more per partition
    assert offsets(gbootstrap, group, topic6) == {p: (2, 3, 1) for p in range(PARTITIONS)}

    def reset(*how: str) -> dict[int, int]:
        """The tool's NEW-OFFSET table, by partition."""
        out = groups_tool(gbootstrap, "--reset-offsets", "--group", group, "--topic", topic6,
                          *how, "--execute")
        return {int(cols[2]): int(cols[3]) for cols in map(str.split, out.splitlines())
                if len(cols) == 4 and cols[0] == group}

    assert reset("--shift-by", "-1") == {p: 1 for p in range(PARTITIONS)}
    assert reset("--to-earliest") == {p: 0 for p in range(PARTITIONS)}
    assert reset("--shift-by", "2") == {p: 2 for p in range(PARTITIONS)}
    assert reset("--to-datetime", before.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]) == {
        p: 0 for p in range(PARTITIONS)}
    assert offsets(gbootstrap, group, topic6) == {p: (0, 3, 3) for p in range(PARTITIONS)}
    reset("--to-latest")
    assert offsets(gbootstrap, group, topic6) == {p: (3, 3, 0) for p in range(PARTITIONS)}

    groups_tool(gbootstrap, "--delete-offsets", "--group", group, "--topic", topic6)
    assert offsets(gbootstrap, group, topic6) == {}
    assert "was successful" in groups_tool(gbootstrap, "--delete", "--group", group)
    assert group not in groups_tool(gbootstrap, "--list").split()


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_three_java_consumers_share_the_partitions(gbootstrap: str, topic6: str,
                                                   protocol: str) -> None:
    """Three console consumers in one group (Kafka's Java consumer, classic or KIP-848
    protocol) each get two partitions and every record is printed exactly once."""
    group = f"java3-{protocol}-{uuid.uuid4().hex[:6]}"
    procs = [subprocess.Popen(
        [str(KAFKA_TOOL), "console-consumer", "--bootstrap-server", gbootstrap,
         "--topic", topic6, "--group", group, "--max-messages", "20",
         # The topic is the test's own: from the beginning is exactly these
         # records, and it removes a race between a member resolving its
         # "latest" position and the records being produced.
         "--from-beginning", "--timeout-ms", "60000",
         "--command-property", f"group.protocol={protocol}",
         "--formatter-property", "print.partition=true"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        for _ in range(3)]
    try:
        def members() -> list[tuple[str, int]]:
            out = groups_tool(gbootstrap, "--describe", "--group", group, "--members")
            rows = []
            for line in out.splitlines():
                cols = line.split()
                if cols and cols[0] == group and cols[-1].isdigit():
                    rows.append((cols[1], int(cols[-1])))
            return rows

        wait_until(lambda: sorted(n for _, n in members()) == [2, 2, 2], 60,
                   what="three Java members with two partitions each")
        values = [f"j{i}" for i in range(60)]
        produce(gbootstrap, topic6, values)
        outputs = [p.communicate(timeout=60)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    printed = [line.split("\t")[-1] for out in outputs for line in out.splitlines()
               if line.startswith("Partition:")]
    assert sorted(printed) == sorted(values)
    per_member = [{line.split("\t")[0] for line in out.splitlines()
                   if line.startswith("Partition:")} for out in outputs]
    assert sorted(len(p) for p in per_member) == [2, 2, 2]


def test_kip848_group_is_described_as_consumer_type(gbootstrap: str, topic6: str) -> None:
    group = f"java848-{uuid.uuid4().hex[:8]}"
    produce(gbootstrap, topic6, [f"v{i}" for i in range(6)])
    consumed = console_consume(gbootstrap, topic6, group, 6, "--command-property",
                               "group.protocol=consumer")
    assert len(consumed) == 6
    listed = groups_tool(gbootstrap, "--list", "--type")
    assert re.search(rf"^{group}\s+Consumer\s*$", listed, re.M), listed
    assert offsets(gbootstrap, group, topic6) == {p: (1, 1, 0) for p in range(PARTITIONS)}


def test_dump_log_decodes_consumer_offsets(group_broker: EmbeddedBroker | None,
                                           gbootstrap: str, topic6: str) -> None:
    """Kafka's own decoder reads strom's __consumer_offsets: same record formats."""
    if group_broker is None:
        pytest.skip("reads the files of its own broker")
    group = f"dump-{uuid.uuid4().hex[:8]}"
    produce(gbootstrap, topic6, [f"v{i}" for i in range(6)])
    console_consume(gbootstrap, topic6, group, 6)
    partitions = int(GROUP_OVERRIDES["offsets.topic.num.partitions"])
    segment = (group_broker.data_dir / f"__consumer_offsets-{partition_for(group, partitions)}"
               / "00000000000000000000.log")
    out = run_kafka_tool("org.apache.kafka.tools.DumpLogSegments", "--offsets-decoder",
                         "--print-data-log", "--files", str(segment)).stdout
    ours = [line for line in out.splitlines() if f'"group":"{group}"' in line]
    commits = [line for line in ours if '"type":"1"' in line]
    metadata = [line for line in ours if '"type":"2"' in line]
    assert len({re.search(r'"partition":(\d+)', line).group(1)  # type: ignore[union-attr]
                for line in commits}) == PARTITIONS
    assert all('"version":"3"' in line and '"offset":1' in line for line in commits)
    stable = [line for line in metadata if '"protocol":"range"' in line]
    assert stable and '"topics":["' + topic6 + '"]' in stable[0]
    assert '"assignedPartitions":[{"topic":"' + topic6 + '"' in stable[0]


def test_java_kip848_consumer_resumes_after_broker_restart(tmp_path: Any) -> None:
    """Kafka's Java consumer on the KIP-848 protocol commits as it closes; produce more,
    restart the broker: the same group reads exactly the new records, a new group
    everything. (The classic protocol's restart is tested with the Python clients.)"""
    if EXTERNAL:
        pytest.skip("restarts its own broker")
    protocol = "consumer"
    with EmbeddedBroker(tmp_path / "data", overrides=GROUP_OVERRIDES) as broker:
        bootstrap = broker.bootstrap
        topic = f"jresume-{uuid.uuid4().hex[:8]}"
        create(bootstrap, topic, PARTITIONS)
        extra = ("--command-property", f"group.protocol={protocol}")
        produce(bootstrap, topic, [f"first{i}" for i in range(12)])
        assert len(console_consume(bootstrap, topic, "jgroup", 12, *extra)) == 12
        produce(bootstrap, topic, [f"later{i}" for i in range(6)])
        broker.restart()
        resumed = console_consume(bootstrap, topic, "jgroup", 6, *extra)
        assert sorted(resumed) == sorted(f"later{i}" for i in range(6))
        everything = console_consume(bootstrap, topic, "jnew", 18, *extra)
        assert len(everything) == 18
