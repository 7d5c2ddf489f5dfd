"""Seeking, watermarks, offsets by timestamp (ListOffsets) and out-of-range fetches,
through each client's own API and the CLIs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from typing import Any

import pytest

from .clients import Rec, consume, produce, raw_fetch, run_kafka_tool, wait_until

pytestmark = pytest.mark.interop

OFFSET_OUT_OF_RANGE = 1
N = 10
# partition 0: timestamps BASE, BASE+1000, ... in order
# partition 1: out of order
P1_DELTAS = [5000, 1000, 3000, 7000]
# (target delta) -> (offset, timestamp delta) of the first record at or after it
P0_QUERIES = {-1: (0, 0), 0: (0, 0), 3500: (4, 4000), 9000: (9, 9000), 9001: None}
P1_QUERIES = {0: (0, 5000), 2000: (0, 5000), 6000: (3, 7000), 7001: None}


@pytest.fixture
def timed_topic(bootstrap: str, topic: str, create_topic: Any) -> tuple[str, int]:
    """Partition 0: N records at BASE + 1000*i; partition 1: out-of-order timestamps;
    partition 2: empty. BASE is ten minutes ago, whole seconds."""
    create_topic(topic, partitions=3)
    base = (int(time.time()) - 600) * 1000
    recs = [Rec(0, f"k{i}".encode(), f"v{i}".encode(), timestamp=base + 1000 * i)
            for i in range(N)]
    produce("confluent", bootstrap, topic, recs)
    for i, d in enumerate(P1_DELTAS):  # one batch each
        produce("confluent", bootstrap, topic,
                [Rec(1, f"o{i}".encode(), f"o{i}".encode(), timestamp=base + d)])
    return topic, base


def test_timestamps_are_kept(bootstrap: str, timed_topic: tuple[str, int]) -> None:
    topic, base = timed_topic
    for reader in ("confluent", "kafka-python", "aiokafka"):
        got = consume(reader, bootstrap, topic, N + len(P1_DELTAS))
        assert [r.timestamp for r in got if r.partition == 0] == [
            base + 1000 * i for i in range(N)], reader
        assert [r.timestamp for r in got if r.partition == 1] == [
            base + d for d in P1_DELTAS], reader
    _, _, batches = raw_fetch(bootstrap, topic, 1)
    assert [b.max_timestamp for b in batches] == [base + d for d in P1_DELTAS]
    assert not any(b.log_append_time for b in batches)


def test_offsets_for_times_confluent(bootstrap: str, timed_topic: tuple[str, int]) -> None:
    from confluent_kafka import Consumer, TopicPartition

    topic, base = timed_topic
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex}"})
    try:
        for partition, queries in ((0, P0_QUERIES), (1, P1_QUERIES), (2, {0: None})):
            for delta, want in queries.items():
                [tp] = c.offsets_for_times([TopicPartition(topic, partition, base + delta)],
                                           timeout=10)
                assert tp.error is None
                assert tp.offset == (want[0] if want else -1), (partition, delta)
    finally:
        c.close()


def test_offsets_for_times_kafka_python(bootstrap: str, timed_topic: tuple[str, int]) -> None:
    from kafka import KafkaConsumer, TopicPartition

    topic, base = timed_topic
    c = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        for partition, queries in ((0, P0_QUERIES), (1, P1_QUERIES), (2, {0: None})):
            tp = TopicPartition(topic, partition)
            for delta, want in queries.items():
                got = c.offsets_for_times({tp: base + delta})[tp]
                if want is None:
                    assert got is None, (partition, delta, got)
                else:
                    assert (got.offset, got.timestamp) == (want[0], base + want[1]), (
                        partition, delta)
    finally:
        c.close()


def test_offsets_for_times_aiokafka(bootstrap: str, timed_topic: tuple[str, int]) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topic, base = timed_topic

    async def run() -> None:
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await c.start()
        try:
            for partition, queries in ((0, P0_QUERIES), (1, P1_QUERIES), (2, {0: None})):
                tp = TopicPartition(topic, partition)
                for delta, want in queries.items():
                    got = (await c.offsets_for_times({tp: base + delta}))[tp]
                    if want is None:
                        assert got is None, (partition, delta, got)
                    else:
                        assert (got.offset, got.timestamp) == (want[0], base + want[1])
        finally:
            await c.stop()

    asyncio.run(run())


def _kcat_query(bootstrap: str, topic: str, partition: int, ts: int) -> int:
    proc = subprocess.run(
        ["kcat", "-Q", "-b", bootstrap, "-t", f"{topic}:{partition}:{ts}", "-J"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    return int(json.loads(proc.stdout)[topic][str(partition)]["offset"])


def test_offsets_kcat(bootstrap: str, timed_topic: tuple[str, int], kcat: str) -> None:
    topic, base = timed_topic
    assert _kcat_query(bootstrap, topic, 0, base + 3500) == 4
    assert _kcat_query(bootstrap, topic, 0, base + 9001) == -1
    assert _kcat_query(bootstrap, topic, 1, base + 6000) == 3
    assert _kcat_query(bootstrap, topic, 0, -2) == 0  # earliest
    assert _kcat_query(bootstrap, topic, 0, -1) == N  # latest
    assert _kcat_query(bootstrap, topic, 2, -1) == 0


def _get_offsets(bootstrap: str, topic: str, time_arg: str) -> dict[int, int]:
    out = run_kafka_tool("get-offsets", "--bootstrap-server", bootstrap, "--topic", topic,
                         "--time", time_arg).stdout
    result = {}
    for line in out.splitlines():
        t, p, o = line.rsplit(":", 2)
        assert t == topic
        result[int(p)] = int(o)
    return result


@pytest.mark.java
def test_offsets_kafka_get_offsets(bootstrap: str, timed_topic: tuple[str, int],
                                   java_tools: Any) -> None:
    topic, base = timed_topic
    assert _get_offsets(bootstrap, topic, "-1") == {0: N, 1: len(P1_DELTAS), 2: 0}
    assert _get_offsets(bootstrap, topic, "earliest") == {0: 0, 1: 0, 2: 0}
    # partitions with no record at or after the timestamp are left out
    assert _get_offsets(bootstrap, topic, str(base + 3500)) == {0: 4, 1: 0}
    assert _get_offsets(bootstrap, topic, str(base + 6000)) == {0: 6, 1: 3}
    assert _get_offsets(bootstrap, topic, str(base + 8000)) == {0: 8}
    # -3: the offset of the record with the largest timestamp
    assert _get_offsets(bootstrap, topic, "-3") == {0: N - 1, 1: 3}


def test_watermarks_every_client(bootstrap: str, timed_topic: tuple[str, int]) -> None:
    from aiokafka import AIOKafkaConsumer
    from aiokafka import TopicPartition as ATP
    from confluent_kafka import Consumer
    from confluent_kafka import TopicPartition as CTP
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP

    topic, _ = timed_topic
    want = {0: (0, N), 1: (0, len(P1_DELTAS)), 2: (0, 0)}

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex}"})
    try:
        got = {p: c.get_watermark_offsets(CTP(topic, p), timeout=10, cached=False)
               for p in want}
        assert got == want
    finally:
        c.close()

    k = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tps = [KTP(topic, p) for p in want]
        lo, hi = k.beginning_offsets(tps), k.end_offsets(tps)
        assert {tp.partition: (lo[tp], hi[tp]) for tp in tps} == want
    finally:
        k.close()

    async def run() -> dict[int, tuple[int, int]]:
        a = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await a.start()
        try:
            tps = [ATP(topic, p) for p in want]
            lo, hi = await a.beginning_offsets(tps), await a.end_offsets(tps)
            return {tp.partition: (lo[tp], hi[tp]) for tp in tps}
        finally:
            await a.stop()

    assert asyncio.run(run()) == want


def test_seek_confluent(bootstrap: str, timed_topic: tuple[str, int]) -> None:
    from confluent_kafka import Consumer, TopicPartition

    topic, _ = timed_topic
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex}",
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, 0, 7)])
        msg = wait_until(lambda: c.poll(0.2), 15, what="a message at offset 7")
        assert (msg.error(), msg.offset(), msg.value()) == (None, 7, b"v7")
        c.seek(TopicPartition(topic, 0, 2))
        msg = wait_until(lambda: c.poll(0.2), 15, what="a message at offset 2")
        assert (msg.offset(), msg.value()) == (2, b"v2")
    finally:
        c.close()


def test_seek_kafka_python(bootstrap: str, timed_topic: tuple[str, int]) -> None:
    from kafka import KafkaConsumer, TopicPartition

    topic, _ = timed_topic
    tp = TopicPartition(topic, 0)
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        c.assign([tp])
        for offset in (7, 2, 9):
            c.seek(tp, offset)
            msgs = wait_until(lambda: c.poll(timeout_ms=200, max_records=1).get(tp), 15,
                              what=f"a message at offset {offset}")
            assert (msgs[0].offset, msgs[0].value) == (offset, f"v{offset}".encode())
        assert c.position(tp) == N
    finally:
        c.close()


def test_seek_aiokafka(bootstrap: str, timed_topic: tuple[str, int]) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topic, _ = timed_topic
    tp = TopicPartition(topic, 0)

    async def run() -> None:
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await c.start()
        try:
            c.assign([tp])
            for offset in (7, 2):
                c.seek(tp, offset)
                msg = await asyncio.wait_for(c.getone(), 15)
                assert (msg.offset, msg.value) == (offset, f"v{offset}".encode())
        finally:
            await c.stop()

    asyncio.run(run())


def test_seek_kcat(bootstrap: str, timed_topic: tuple[str, int], kcat: str) -> None:
    topic, _ = timed_topic
    proc = subprocess.run(
        [kcat, "-C", "-b", bootstrap, "-t", topic, "-p", "0", "-o", "7", "-e", "-J", "-q"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    msgs = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [(m["offset"], m["payload"]) for m in msgs] == [(i, f"v{i}") for i in range(7, N)]


@pytest.mark.java
def test_seek_console_consumer(bootstrap: str, timed_topic: tuple[str, int],
                               java_tools: Any) -> None:
    topic, _ = timed_topic
    out = run_kafka_tool(
        "console-consumer", "--bootstrap-server", bootstrap, "--topic", topic,
        "--partition", "0", "--offset", "7", "--max-messages", "3", "--timeout-ms", "20000",
        "--formatter-property", "print.offset=true",
    ).stdout
    assert out.splitlines() == [f"Offset:{i}\tv{i}" for i in range(7, N)]


def test_fetch_out_of_range(bootstrap: str, timed_topic: tuple[str, int]) -> None:
    topic, _ = timed_topic
    assert raw_fetch(bootstrap, topic, 0, offset=N + 5)[0] == OFFSET_OUT_OF_RANGE
    error, hw, batches = raw_fetch(bootstrap, topic, 0, offset=N)  # at the end: nothing yet
    assert (error, hw, batches) == (0, N, [])
    error, hw, batches = raw_fetch(bootstrap, topic, 0, offset=3)
    assert error == 0 and batches and batches[0].base_offset <= 3


def test_out_of_range_reset_policies(bootstrap: str, timed_topic: tuple[str, int]) -> None:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import OffsetOutOfRangeError

    topic, _ = timed_topic
    tp = TopicPartition(topic, 0)
    c = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                      enable_auto_commit=False)
    try:
        c.assign([tp])
        c.seek(tp, 1000)
        msgs = wait_until(lambda: c.poll(timeout_ms=200).get(tp), 15, what="reset to earliest")
        assert msgs[0].offset == 0
    finally:
        c.close()

    c = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="latest",
                      enable_auto_commit=False)
    try:
        c.assign([tp])
        c.seek(tp, 1000)

        def position_after_poll() -> int:
            assert not c.poll(timeout_ms=100)
            return int(c.position(tp))

        wait_until(lambda: position_after_poll() == N, 15, what="reset to latest")
    finally:
        c.close()

    c = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="none",
                      enable_auto_commit=False)
    try:
        c.assign([tp])
        c.seek(tp, 1000)
        deadline = time.monotonic() + 15
        with pytest.raises(OffsetOutOfRangeError):
            while time.monotonic() < deadline:
                c.poll(timeout_ms=200)
    finally:
        c.close()
