"""One way to produce and consume with each real Kafka client the interop tests use.

Every producer takes the same list of :class:`Rec` and raises if the broker
did not take them; every consumer reads a whole topic from the beginning and
returns what it got as :class:`Rec`, sorted by (partition, offset).

Clients: ``confluent`` (confluent-kafka / librdkafka), ``kafka-python``,
``aiokafka``, ``kcat`` (the CLI) and ``java`` (Kafka's console producer and
consumer through ``scripts/kafka-tool``). The last two speak text: give them
records whose keys, values and headers are tab-, comma-, colon- and
newline-free ASCII.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
KAFKA_TOOL = REPO / "scripts" / "kafka-tool"
KAFKA_LIBS = REPO / ".cache" / "kafka" / "libs"
JAVA_SOURCES = Path(__file__).parent / "java"


def compile_java(name: str, out: Path) -> Path:
    """javac tests/interop/java/<name>.java against Kafka's client jars into `out`."""
    subprocess.run(["javac", "-cp", f"{KAFKA_LIBS}/*", "-d", str(out),
                    str(JAVA_SOURCES / f"{name}.java")],
                   check=True, capture_output=True, timeout=120)
    return out

PRODUCERS = ("confluent", "kafka-python", "aiokafka", "kcat", "java")
CONSUMERS = ("confluent", "kafka-python", "aiokafka", "kcat", "java")
PYTHON_CLIENTS = ("confluent", "kafka-python", "aiokafka")
CODECS = ("gzip", "snappy", "lz4", "zstd")

Headers = tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True)
class Rec:
    partition: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    timestamp: int | None = field(default=None, compare=False)
    offset: int = field(default=-1, compare=False)


def content(recs: Sequence[Rec]) -> list[tuple[int, bytes | None, bytes | None, Headers]]:
    """What a round trip must preserve, in (partition, offset) order."""
    return [(r.partition, r.key, r.value, r.headers) for r in recs]


def wait_until(cond: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05,
               what: str = "condition") -> Any:
    """Poll ``cond`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = cond()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's Java default partitioner picks for a key."""
    from kafka.partitioner.default import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions


def keyed_records(n: int, partitions: int, tag: str = "") -> list[Rec]:
    """``n`` keyed text records with two headers, spread evenly over every partition,
    each in the partition the Java client's default partitioner picks for its key."""
    out = []
    per_partition = [0] * partitions
    quota = -(-n // partitions)
    i = 0
    while len(out) < n:
        key = f"key-{tag}{i}".encode()
        partition = murmur2_partition(key, partitions)
        i += 1
        if per_partition[partition] >= quota:
            continue
        per_partition[partition] += 1
        out.append(
            Rec(
                partition=partition,
                key=key,
                value=f"value-{tag}{i}-{'x' * (i % 7)}".encode(),
                headers=(("trace", f"t{i}".encode()), ("source", tag.encode() or b"test")),
            )
        )
    return out


def sort_recs(recs: list[Rec]) -> list[Rec]:
    return sorted(recs, key=lambda r: (r.partition, r.offset))


def by_partition_in_order(recs: Sequence[Rec]) -> list[Rec]:
    """Records as they must come back: grouped by partition, in send order within one."""
    return sorted(recs, key=lambda r: r.partition)  # stable: keeps send order


# ---------------------------------------------------------------- producers


def produce(client: str, bootstrap: str, topic: str, recs: Sequence[Rec], *,
            compression: str | None = None, acks: str = "all",
            config: dict[str, Any] | None = None) -> None:
    """Produce ``recs`` (each to its partition) and wait until the broker took them."""
    fn = {
        "confluent": produce_confluent,
        "kafka-python": produce_kafka_python,
        "aiokafka": produce_aiokafka,
        "kcat": produce_kcat,
        "java": produce_java,
    }[client]
    fn(bootstrap, topic, recs, compression=compression, acks=acks, config=config or {})


def produce_confluent(bootstrap: str, topic: str, recs: Sequence[Rec], *,
                      compression: str | None, acks: str, config: dict[str, Any]) -> None:
    from confluent_kafka import Producer

    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5}
    if compression:
        conf["compression.type"] = compression
    conf.update(config)
    producer = Producer(conf)
    errors: list[Any] = []
    delivered: list[Any] = []

    def on_delivery(err: Any, msg: Any) -> None:
        (errors if err else delivered).append(err or msg)

    for r in recs:
        kwargs: dict[str, Any] = {"partition": r.partition, "on_delivery": on_delivery}
        if r.headers:
            kwargs["headers"] = list(r.headers)
        if r.timestamp is not None:
            kwargs["timestamp"] = r.timestamp
        producer.produce(topic, value=r.value, key=r.key, **kwargs)
    remaining = producer.flush(30)
    assert remaining == 0, f"{remaining} messages not delivered"
    assert not errors, f"delivery errors: {errors}"
    assert len(delivered) == len(recs)


def produce_kafka_python(bootstrap: str, topic: str, recs: Sequence[Rec], *,
                         compression: str | None, acks: str, config: dict[str, Any]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks=int(acks) if acks in ("0", "1") else acks,
        compression_type=compression,
        linger_ms=5,
        **config,
    )
    try:
        futures = [
            producer.send(topic, value=r.value, key=r.key, partition=r.partition,
                          headers=list(r.headers) or None, timestamp_ms=r.timestamp)
            for r in recs
        ]
        producer.flush(timeout=30)
        for f in futures:
            f.get(timeout=30)
    finally:
        producer.close(timeout=10)


def produce_aiokafka(bootstrap: str, topic: str, recs: Sequence[Rec], *,
                     compression: str | None, acks: str, config: dict[str, Any]) -> None:
    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks=int(acks) if acks in ("0", "1") else acks,
            compression_type=compression,
            linger_ms=5,
            **config,
        )
        await producer.start()
        try:
            futures = [
                await producer.send(topic, value=r.value, key=r.key, partition=r.partition,
                                    headers=list(r.headers) or None, timestamp_ms=r.timestamp)
                for r in recs
            ]
            await asyncio.wait_for(asyncio.gather(*futures), 30)
        finally:
            await producer.stop()

    asyncio.run(run())


def kcat_path() -> str:
    path = shutil.which("kcat")
    if path is None:
        raise RuntimeError("kcat not installed")
    return path


def produce_kcat(bootstrap: str, topic: str, recs: Sequence[Rec], *,
                 compression: str | None, acks: str, config: dict[str, Any]) -> None:
    """One kcat run per record: kcat sends each file argument as one message.
    kcat cannot send an empty or null value (it skips empty input)."""
    base = [kcat_path(), "-P", "-b", bootstrap, "-t", topic, "-X", f"acks={acks}", "-q"]
    if compression:
        base += ["-z", compression]
    for k, v in config.items():
        base += ["-X", f"{k}={v}"]
    with tempfile.TemporaryDirectory(prefix="kcat-") as tmp:
        for i, r in enumerate(recs):
            assert r.value, "kcat cannot produce an empty or null value"
            path = Path(tmp) / f"m{i}"
            path.write_bytes(r.value)
            cmd = base + ["-p", str(r.partition)]
            if r.key is not None:
                cmd += ["-k", r.key.decode()]
            for hk, hv in r.headers:
                assert hv is not None
                cmd += ["-H", f"{hk}={hv.decode()}"]
            if r.timestamp is not None:
                raise AssertionError("kcat -P takes no per-message timestamp here")
            subprocess.run(cmd + [str(path)], check=True, timeout=30,
                           stdin=subprocess.DEVNULL, capture_output=True)


def run_kafka_tool(*args: str, input: str | None = None, timeout: float = 60,
                   check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(KAFKA_TOOL), *args], input=input, text=True, capture_output=True,
        timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"kafka-tool {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
        )
    return proc


NULL_MARKER = "<NULL>"


def produce_java(bootstrap: str, topic: str, recs: Sequence[Rec], *,
                 compression: str | None, acks: str, config: dict[str, Any]) -> None:
    """Kafka's console producer: lines ``h1:v1,h2:v2<TAB>key<TAB>value``. It cannot
    choose a partition: the default partitioner (murmur2 of the key) does, so the
    records' partitions must be what :func:`murmur2_partition` gives."""
    with_headers = any(r.headers for r in recs)
    assert all(bool(r.headers) == with_headers for r in recs), (
        "the console producer needs headers on every line or on none"
    )
    lines = []
    for r in recs:
        key = NULL_MARKER if r.key is None else r.key.decode()
        value = NULL_MARKER if r.value is None else r.value.decode()
        line = f"{key}\t{value}"
        if with_headers:
            headers = ",".join(
                f"{k}:{NULL_MARKER if v is None else v.decode()}" for k, v in r.headers
            )
            line = f"{headers}\t{line}"
        lines.append(line)
    args = [
        "console-producer", "--bootstrap-server", bootstrap, "--topic", topic,
        "--reader-property", "parse.key=true",
        "--reader-property", f"parse.headers={'true' if with_headers else 'false'}",
        "--reader-property", f"null.marker={NULL_MARKER}",
        "--producer-property", f"acks={acks}",
        "--producer-property", "linger.ms=5",
    ]
    if compression:
        args += ["--compression-codec", compression]
    for k, v in config.items():
        args += ["--producer-property", f"{k}={v}"]
    run_kafka_tool(*args, input="\n".join(lines) + "\n")


# ---------------------------------------------------------------- consumers


def consume(client: str, bootstrap: str, topic: str, count: int, *,
            timeout: float = 30.0) -> list[Rec]:
    """Read the whole topic from the beginning until ``count`` records came back
    (or ``timeout`` passed); records sorted by (partition, offset)."""
    fn = {
        "confluent": consume_confluent,
        "kafka-python": consume_kafka_python,
        "aiokafka": consume_aiokafka,
        "kcat": consume_kcat,
        "java": consume_java,
    }[client]
    return sort_recs(fn(bootstrap, topic, count, timeout))


def _confluent_partitions(bootstrap: str, topic: str) -> list[int]:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    md = admin.list_topics(topic, timeout=10)
    t = md.topics[topic]
    assert t.error is None, t.error
    return sorted(t.partitions)


def consume_confluent(bootstrap: str, topic: str, count: int, timeout: float) -> list[Rec]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"interop-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "fetch.message.max.bytes": 2 * 1024 * 1024,
    })
    try:
        parts = _confluent_partitions(bootstrap, topic)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        out: list[Rec] = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            out.append(Rec(
                partition=msg.partition(), key=msg.key(), value=msg.value(),
                headers=tuple(msg.headers() or ()), timestamp=msg.timestamp()[1],
                offset=msg.offset(),
            ))
        return out
    finally:
        consumer.close()


def consume_kafka_python(bootstrap: str, topic: str, count: int, timeout: float) -> list[Rec]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest", max_partition_fetch_bytes=2 * 1024 * 1024,
    )
    try:
        parts = wait_until(lambda: consumer.partitions_for_topic(topic), 10,
                           what=f"partitions of {topic}")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[Rec] = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            for tp_msgs in consumer.poll(timeout_ms=200).values():
                for m in tp_msgs:
                    out.append(Rec(
                        partition=m.partition, key=m.key, value=m.value,
                        headers=tuple((k, v) for k, v in (m.headers or ())),
                        timestamp=m.timestamp, offset=m.offset,
                    ))
        return out
    finally:
        consumer.close()


def consume_aiokafka(bootstrap: str, topic: str, count: int, timeout: float) -> list[Rec]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run() -> list[Rec]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", max_partition_fetch_bytes=2 * 1024 * 1024,
        )
        await consumer.start()
        try:
            parts: set[int] | None = None
            deadline = time.monotonic() + 10
            while not parts and time.monotonic() < deadline:
                parts = consumer.partitions_for_topic(topic)
                if not parts:
                    await consumer._client.force_metadata_update()
                    parts = consumer.partitions_for_topic(topic)
                    if not parts:
                        await asyncio.sleep(0.1)
            assert parts, f"no partitions for {topic}"
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            out: list[Rec] = []
            deadline = time.monotonic() + timeout
            while len(out) < count and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=200)
                for msgs in batch.values():
                    for m in msgs:
                        out.append(Rec(
                            partition=m.partition, key=m.key, value=m.value,
                            headers=tuple((k, v) for k, v in (m.headers or ())),
                            timestamp=m.timestamp, offset=m.offset,
                        ))
            return out
        finally:
            await consumer.stop()

    return asyncio.run(run())


def consume_kcat(bootstrap: str, topic: str, count: int, timeout: float) -> list[Rec]:
    proc = subprocess.run(
        [kcat_path(), "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-J",
         "-q", "-c", str(count), "-X", "fetch.message.max.bytes=2097152"],
        capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    out = []
    for line in proc.stdout.decode().splitlines():
        if not line.strip():
            continue
        m = json.loads(line)
        hdrs = m.get("headers") or []
        out.append(Rec(
            partition=m["partition"],
            key=None if m["key"] is None else m["key"].encode(),
            value=None if m["payload"] is None else m["payload"].encode(),
            headers=tuple(
                (hdrs[i], None if hdrs[i + 1] is None else hdrs[i + 1].encode())
                for i in range(0, len(hdrs), 2)
            ),
            timestamp=m["ts"], offset=m["offset"],
        ))
    return out


def consume_java(bootstrap: str, topic: str, count: int, timeout: float) -> list[Rec]:
    """Kafka's console consumer --from-beginning (a fresh consumer group), printing
    partition, offset, headers, key and value. It prints a null key or value as
    ``null``, an empty one as nothing."""
    proc = run_kafka_tool(
        "console-consumer", "--bootstrap-server", bootstrap, "--topic", topic,
        "--from-beginning", "--max-messages", str(count), "--timeout-ms", str(int(timeout * 1000)),
        "--formatter-property", "print.partition=true",
        "--formatter-property", "print.offset=true",
        "--formatter-property", "print.headers=true",
        "--formatter-property", "print.key=true",
        "--formatter-property", "print.timestamp=true",
        "--consumer-property", "max.partition.fetch.bytes=2097152",
        timeout=timeout + 30, check=False,
    )
    out = []
    for line in proc.stdout.splitlines():
        if not line.startswith("CreateTime:") and not line.startswith("LogAppendTime:"):
            continue
        ts, part, off, headers, key, value = line.split("\t", 5)
        hdrs: Headers = ()
        if headers != "NO_HEADERS":
            pairs = [h.split(":", 1) for h in headers.split(",")]
            hdrs = tuple((k, None if v == "null" else v.encode()) for k, v in pairs)
        out.append(Rec(
            partition=int(part.split(":")[1]),
            key=None if key == "null" else key.encode(),
            value=None if value == "null" else value.encode(),
            headers=hdrs,
            timestamp=int(ts.split(":")[1]),
            offset=int(off.split(":")[1]),
        ))
    if len(out) < count:
        raise AssertionError(
            f"console consumer got {len(out)} of {count} records (exit {proc.returncode})\n"
            f"stderr:\n{proc.stderr[-3000:]}"
        )
    return out


def strip(recs: Sequence[Rec]) -> list[Rec]:
    """Records without timestamp/offset (for comparing as a set)."""
    return [replace(r, timestamp=None, offset=-1) for r in recs]


# ---------------------------------------------------------------- raw protocol


@dataclass(frozen=True)
class BatchInfo:
    base_offset: int
    last_offset_delta: int
    magic: int
    attributes: int
    record_count: int
    crc_ok: bool
    max_timestamp: int
    size: int  # bytes on the wire, header included

    @property
    def codec(self) -> str:
        return ("none", "gzip", "snappy", "lz4", "zstd")[self.attributes & 0x07]

    @property
    def log_append_time(self) -> bool:
        return bool(self.attributes & 0x08)


RETRIABLE = {3, 5, 6}  # UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, NOT_LEADER


def raw_fetch(bootstrap: str, topic: str, partition: int, offset: int = 0,
              max_bytes: int = 8 * 1024 * 1024, timeout: float = 10.0,
              ) -> tuple[int, int, list[BatchInfo]]:
    """A Fetch v4 request, hand-encoded, to the partition's leader as the cluster's
    metadata names it (any of the ``bootstrap`` servers answers that). Returns
    (error_code, high_watermark, record batches as stored). Retried, with the leader
    looked up again, while the error is one a client would retry (a new topic not yet
    loaded, a leader that moved)."""
    deadline = time.monotonic() + timeout
    while True:
        leader = leader_address(bootstrap, topic, partition)
        if leader is None:
            result: tuple[int, int, list[BatchInfo]] = (5, -1, [])  # LEADER_NOT_AVAILABLE
        else:
            result = _raw_fetch_once(leader, topic, partition, offset, max_bytes)
        if result[0] not in RETRIABLE or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def bootstrap_servers(bootstrap: str) -> list[tuple[str, int]]:
    """The (host, port) pairs of a bootstrap list ("host:port,host:port")."""
    out = []
    for server in bootstrap.split(","):
        host, port = server.strip().rsplit(":", 1)
        out.append((host, int(port)))
    return out


def leader_address(bootstrap: str, topic: str, partition: int) -> tuple[str, int] | None:
    """(host, port) of the partition's leader from a Metadata request (confluent-kafka),
    None while the metadata names none."""
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    t = md.topics.get(topic)
    if t is None or t.error is not None or partition not in t.partitions:
        return None
    broker = md.brokers.get(t.partitions[partition].leader)
    return None if broker is None else (broker.host, broker.port)


def _raw_fetch_once(broker: tuple[str, int], topic: str, partition: int, offset: int,
                    max_bytes: int) -> tuple[int, int, list[BatchInfo]]:
    import socket
    import struct

    import crc32c

    def string(s: str) -> bytes:
        b = s.encode()
        return struct.pack(">h", len(b)) + b

    body = (
        struct.pack(">hhi", 1, 4, 7) + string("strom-interop")
        + struct.pack(">iiiib", -1, 100, 1, max_bytes, 0)
        + struct.pack(">i", 1) + string(topic)
        + struct.pack(">i", 1) + struct.pack(">iqi", partition, offset, max_bytes)
    )
    with socket.create_connection(broker, timeout=10) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)

        def read(n: int) -> bytes:
            buf = b""
            while len(buf) < n:
                chunk = sock.recv(n - len(buf))
                if not chunk:
                    raise ConnectionError("broker closed the connection")
                buf += chunk
            return buf

        (size,) = struct.unpack(">i", read(4))
        resp = read(size)
    pos = 0

    def take(fmt: str) -> Any:
        nonlocal pos
        vals = struct.unpack_from(fmt, resp, pos)
        pos += struct.calcsize(fmt)
        return vals if len(vals) > 1 else vals[0]

    correlation_id = take(">i")
    assert correlation_id == 7
    take(">i")  # throttle
    assert take(">i") == 1
    tlen = take(">h")
    assert resp[pos:pos + tlen].decode() == topic
    pos += tlen
    assert take(">i") == 1
    part, error, hw, _lso = take(">ihqq")
    assert part == partition
    aborted = take(">i")
    pos += max(aborted, 0) * 16
    rlen = take(">i")
    records = resp[pos:pos + max(rlen, 0)]
    batches = []
    p = 0
    while p + 61 <= len(records):
        base_offset, batch_len, _epoch, magic, crc = struct.unpack_from(">qiibI", records, p)
        end = p + 12 + batch_len
        if end > len(records):
            break  # a partial batch at the end of the response
        attributes, last_delta, _first_ts, max_ts = struct.unpack_from(">hiqq", records, p + 21)
        (count,) = struct.unpack_from(">i", records, p + 57)
        batches.append(BatchInfo(
            base_offset=base_offset, last_offset_delta=last_delta, magic=magic,
            attributes=attributes, record_count=count,
            crc_ok=crc32c.crc32c(records[p + 21:end]) == crc, max_timestamp=max_ts,
            size=end - p,
        ))
        p = end
    return error, hw, batches


# ---------------------------------------------------------------- errors


def produce_error(client: str, bootstrap: str, topic: str, rec: Rec, *,
                  config: dict[str, Any] | None = None) -> int:
    """Produce one record with acks=all; return the Kafka error code it got (0: taken).
    Client-side size limits are raised out of the way by the caller's ``config``."""
    config = config or {}
    if client == "confluent":
        from confluent_kafka import KafkaError, Producer

        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                             "retries": 0, **config})
        result: list[Any] = []
        producer.produce(topic, value=rec.value, key=rec.key, partition=rec.partition,
                         headers=list(rec.headers) or None,
                         on_delivery=lambda err, msg: result.append(err))
        assert producer.flush(30) == 0
        err = result[0]
        if err is None:
            return 0
        assert isinstance(err, KafkaError)
        return int(err.code())
    if client == "kafka-python":
        from kafka import KafkaProducer
        from kafka.errors import KafkaError as KPError

        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=0, **config)
        try:
            producer.send(topic, value=rec.value, key=rec.key, partition=rec.partition,
                          headers=list(rec.headers) or None).get(timeout=30)
            return 0
        except KPError as e:
            return int(e.errno)
        finally:
            producer.close(timeout=10)
    if client == "aiokafka":
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import KafkaError as AKError

        async def run() -> int:
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **config)
            await producer.start()
            try:
                await producer.send_and_wait(topic, value=rec.value, key=rec.key,
                                             partition=rec.partition,
                                             headers=list(rec.headers) or None)
                return 0
            except AKError as e:
                return int(e.errno)
            finally:
                await producer.stop()

        return asyncio.run(run())
    raise ValueError(client)


BIG_REQUESTS = {
    "confluent": {"message.max.bytes": 8_000_000, "batch.size": 8_000_000},
    "kafka-python": {"max_request_size": 8_000_000},
    "aiokafka": {"max_request_size": 8_000_000},
}


def watermarks(bootstrap: str, topic: str, partition: int, timeout: float = 10.0,
               ) -> tuple[int, int]:
    """(log start offset, high watermark) of a partition, by ListOffsets (confluent-kafka);
    retried while the partition is not yet known to the broker."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"wm-{uuid.uuid4().hex}"})
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                lo, hi = c.get_watermark_offsets(TopicPartition(topic, partition),
                                                 timeout=5, cached=False)
                return int(lo), int(hi)
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        c.close()
