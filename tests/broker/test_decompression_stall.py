"""Hardening #6: corrupt and bomb compressed batches cost their sender, not the
broker. At 0098471 one client producing 178-byte corrupt LZ4/ZSTD batches held
the event loop 0.25-0.7 s per batch (buffers grown to 256 MiB before the data
was called corrupt), and other clients' ApiVersions p50 rose to 633 ms.

A broker in a subprocess (so its RSS is its own); one connection produces
corrupt frames and valid-but-enormous frames of every codec in a loop while
another times ApiVersions round trips. Then valid batches of every codec,
including one large enough to be validated on the worker thread, are
appended, and a pipelined large + small pair keeps its order.

Round-trip figures are printed (pytest -s) for the report; the issue's goal
is p99 under 50 ms, asserted with a margin for a shared test machine.
"""

from __future__ import annotations

import functools
import gzip
import os
import statistics
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cramjam
import lz4.frame
import pytest
from kio.schema.api_versions.v3.request import ApiVersionsRequest

from strom.errors import ErrorCode
from strom.protocol.records import Compression, TimestampType
from strom.protocol.records.batch import compute_attributes
from strom.protocol.records.builder import RecordSpec, assemble_batch, build_batch
from tests.process import StromProcess
from tests.wire import WireClient, metadata_request, produce_request

MIB = 1 << 20
TOPIC = "bombs"
# The goal is 50 ms; other test processes share the machine's two
# cores, so the assertion leaves room and the measured figure is printed.
P99_LIMIT_S = 0.2  # as tests/broker/test_resource_limits.py
ATTACK_SECONDS = 4.0


def _batch(codec: Compression, payload: bytes, records_count: int = 1) -> bytes:
    """A well-formed v2 batch (valid CRC) around `payload` as the compressed
    records section."""
    return assemble_batch(
        payload, attributes=compute_attributes(codec, TimestampType.CREATE_TIME),
        last_offset_delta=records_count - 1, records_count=records_count,
        base_timestamp=int(time.time() * 1000), max_timestamp=int(time.time() * 1000),
    )


#: A real frame header (4 MiB blocks, header checksum right), from python-lz4.
LZ4_HEADER = lz4.frame.compress(b"x", block_size=lz4.frame.BLOCKSIZE_MAX4MB,
                                store_size=False, content_checksum=False)[:7]


def corrupt_lz4() -> bytes:
    # A sound frame header, one compressed block of noise.
    noise = os.urandom(100)
    return LZ4_HEADER + struct.pack("<I", len(noise)) + noise + struct.pack("<I", 0)


def corrupt_zstd() -> bytes:
    # No content size, a 128 MiB window (as a streaming encoder writes), one
    # compressed block of noise.
    noise = os.urandom(100)
    block = (2 << 1 | 1 | len(noise) << 3).to_bytes(3, "little")
    return struct.pack("<IBB", 0xFD2FB528, 0x00, (27 - 10) << 3) + block + noise


def lying_snappy() -> bytes:
    return b"\xff\xff\xff\xff\x0f" + os.urandom(60)  # claims 4 GiB


@functools.cache
def bomb(codec: Compression) -> bytes:
    """Valid compression of zeros, built once per run (not at import)."""
    if codec is Compression.ZSTD:
        return bytes(cramjam.zstd.compress(bytes(200 * MIB), level=1))  # RLE blocks, ~6 KB
    if codec is Compression.LZ4:
        return bytes(cramjam.lz4.compress(bytes(64 * MIB)))  # ~280 KB
    if codec is Compression.GZIP:
        return gzip.compress(bytes(200 * MIB), mtime=0)  # ~200 KB
    return bytes(cramjam.snappy.compress_raw(bytes(20 * MIB)))  # ~1 MB


#: (name, batch, the error codes Kafka would answer)
ATTACKS: list[tuple[str, Callable[[], bytes], set[int]]] = [
    ("corrupt lz4", lambda: _batch(Compression.LZ4, corrupt_lz4()), {ErrorCode.corrupt_message}),
    ("corrupt zstd", lambda: _batch(Compression.ZSTD, corrupt_zstd()),
     {ErrorCode.corrupt_message}),
    ("lying snappy", lambda: _batch(Compression.SNAPPY, lying_snappy()),
     {ErrorCode.corrupt_message}),
    # Valid compression of zeros: inflated (on a worker), then no record parses.
    *((f"{codec.name.lower()} bomb", functools.partial(lambda c: _batch(c, bomb(c)), codec),
       {ErrorCode.invalid_record})
      for codec in (Compression.ZSTD, Compression.LZ4, Compression.GZIP, Compression.SNAPPY)),
]


@pytest.fixture(scope="module")
def strom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StromProcess]:
    broker = StromProcess(tmp_path_factory.mktemp("bombs") / "data",
                          overrides={"message.max.bytes": str(2 * MIB)})
    broker.start()
    with WireClient(broker.bootstrap) as client:
        client.request(3, 12, metadata_request(TOPIC))
    yield broker
    broker.stop()


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def _produce(client: WireClient, batch: bytes) -> tuple[int, int]:
    response = client.request(0, 9, produce_request(TOPIC, batch))
    partition = response.responses[0].partition_responses[0]
    return int(partition.error_code), int(partition.base_offset)


def _round_trips(bootstrap: str, stop: threading.Event, out: list[float],
                 samples: int = 100_000) -> None:
    with WireClient(bootstrap) as client:
        request = ApiVersionsRequest(client_software_name="rtt", client_software_version="1")
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline and len(out) < samples:
            started = time.perf_counter()
            client.request(18, 3, request)
            out.append(time.perf_counter() - started)
            stop.wait(0.002)  # paced, not a busy loop: ~400 probes a second


def _percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    return (statistics.median(ordered), ordered[int(len(ordered) * 0.99)], ordered[-1])


def test_bombs_and_corrupt_batches_do_not_stall_others(strom: StromProcess) -> None:
    assert strom.proc is not None
    pid = strom.proc.pid
    for codec in (Compression.ZSTD, Compression.LZ4, Compression.GZIP, Compression.SNAPPY):
        bomb(codec)  # built before anything is measured
    baseline: list[float] = []
    _round_trips(strom.bootstrap, threading.Event(), baseline, samples=200)
    rss_before = _status_kib(pid, "VmRSS")

    during: list[float] = []
    stop = threading.Event()
    probe = threading.Thread(target=_round_trips, args=(strom.bootstrap, stop, during))
    probe.start()
    answers: dict[str, list[int]] = {name: [] for name, _, _ in ATTACKS}
    sent = 0
    try:
        with WireClient(strom.bootstrap, timeout=30) as attacker:
            deadline = time.monotonic() + ATTACK_SECONDS
            # Every attack at least once, however slow a loaded machine is.
            while (time.monotonic() < deadline or sent < len(ATTACKS)) and sent < 2000:
                name, make, _ = ATTACKS[sent % len(ATTACKS)]
                code, _ = _produce(attacker, make())
                answers[name].append(code)
                sent += 1
    finally:
        stop.set()
        probe.join()
    rss_peak = _status_kib(pid, "VmHWM")
    # A response may leave before its request's memory is freed (the broker
    # writes it from the request's own task): wait for the memory, bounded.
    deadline = time.monotonic() + 10
    rss_after = _status_kib(pid, "VmRSS")
    while rss_after - rss_before >= 100 * 1024 and time.monotonic() < deadline:
        time.sleep(0.05)
        rss_after = _status_kib(pid, "VmRSS")

    p50_0, p99_0, max_0 = _percentiles(baseline)
    p50, p99, worst = _percentiles(during)
    print(f"\nbatches sent: {sent}; ApiVersions round trips: before p50 {p50_0 * 1e3:.2f} ms "
          f"p99 {p99_0 * 1e3:.2f} ms max {max_0 * 1e3:.2f} ms ({len(baseline)}); during "
          f"p50 {p50 * 1e3:.2f} ms p99 {p99 * 1e3:.2f} ms max {worst * 1e3:.2f} ms "
          f"({len(during)}); RSS before {rss_before // 1024} MiB, peak {rss_peak // 1024} "
          f"MiB, after {rss_after // 1024} MiB")
    for name, _, expected in ATTACKS:
        assert answers[name], f"no {name} batch was sent"
        assert set(answers[name]) <= expected, (name, answers[name])
    assert sent >= 2 * len(ATTACKS)
    assert p99 < P99_LIMIT_S, f"ApiVersions p99 {p99 * 1e3:.1f} ms while bombs were produced"
    # One attacker inflates one batch at a time, at most 256 MiB (the cap):
    # the peak stays well under what unbounded decompression would reach.
    assert rss_peak - rss_before < 400 * 1024, (rss_before, rss_peak)
    assert rss_after - rss_before < 100 * 1024, (rss_before, rss_after)


@pytest.mark.parametrize("codec", [c for c in Compression if c is not Compression.NONE],
                         ids=lambda c: c.name)
def test_valid_batches_of_every_codec_still_append(strom: StromProcess,
                                                   codec: Compression) -> None:
    small = build_batch([RecordSpec(key=b"k", value=b"v" * 100)] * 10, compression=codec)
    # 8 MiB of records: past the 4 MiB validated on the event loop, so this
    # one is validated on a worker thread and appended after.
    large = build_batch([RecordSpec(key=None, value=bytes(MIB))] * 8, compression=codec)
    with WireClient(strom.bootstrap, timeout=30) as client:
        code, first = _produce(client, small)
        assert code == ErrorCode.none
        code, second = _produce(client, large)
        assert code == ErrorCode.none
        assert second == first + 10


def test_pipelined_large_then_small_keep_their_order(strom: StromProcess) -> None:
    large = build_batch([RecordSpec(key=None, value=bytes(MIB))] * 16,
                        compression=Compression.GZIP)
    small = build_batch([RecordSpec(key=b"k", value=b"v")], compression=Compression.GZIP)
    with WireClient(strom.bootstrap, timeout=30) as client:
        ids = [client.send(0, 9, produce_request(TOPIC, batch))
               for batch in (large, small, large, small)]
        offsets = []
        for expected in ids:
            got, response = client.receive(0, 9)
            assert got == expected
            partition = response.responses[0].partition_responses[0]
            assert partition.error_code == ErrorCode.none
            offsets.append(partition.base_offset)
    assert offsets == sorted(offsets)
    assert offsets[1] == offsets[0] + 16 and offsets[3] == offsets[2] + 16


@pytest.mark.parametrize("codec", ["zstd", "lz4", "gzip", "snappy"])
def test_idempotent_producer_with_large_batches_keeps_order(strom: StromProcess,
                                                            codec: str) -> None:
    """librdkafka, idempotent, 5 requests in flight, batches of ~8 MiB of
    records: most are validated on the worker thread, some requests wait
    for a turn behind them, and every record arrives once, in order."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic = f"large-{codec}"
    with WireClient(strom.bootstrap) as client:
        client.request(3, 12, metadata_request(topic))
    producer = Producer({
        "bootstrap.servers": strom.bootstrap, "enable.idempotence": True,
        "compression.type": codec, "linger.ms": 20, "batch.size": 8 * MIB,
        "message.max.bytes": 16 * MIB, "batch.num.messages": 100_000,
        "max.in.flight.requests.per.connection": 5,
    })
    count = 400
    value = bytes(range(256)) * 160  # 40 KiB, compressible
    errors: list[object] = []
    for i in range(count):
        producer.produce(topic, key=str(i).encode(), value=value,
                         on_delivery=lambda err, _msg: errors.append(err) if err else None)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert errors == []
    consumer = Consumer({"bootstrap.servers": strom.bootstrap, "group.id": f"g-{codec}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "fetch.max.bytes": 64 * MIB, "max.partition.fetch.bytes": 64 * MIB,
                         "receive.message.max.bytes": 80 * MIB})
    consumer.assign([TopicPartition(topic, 0, 0)])
    keys: list[int] = []
    deadline = time.monotonic() + 60
    try:
        while len(keys) < count and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=1):
                assert message.error() is None, message.error()
                assert message.value() == value
                keys.append(int(message.key()))
    finally:
        consumer.close()
    assert keys == list(range(count))
