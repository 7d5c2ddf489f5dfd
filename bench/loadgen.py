"""librdkafka load generator (confluent-kafka), run as its own process by bench/run.py.

Every mode prints one JSON object on stdout. The Python side only hands
librdkafka prebuilt payloads in large lists (`produce_batch`) and asks for
delivery reports on errors only, so the per-record Python cost stays small;
each result carries the CPU the generator used (whole process and its
Python thread), so a report can show whether the generator, not the broker,
was the limit.

  loadgen.py produce  --bootstrap B --topic T --records N --size S --acks 1|all
                      [--linger-ms 5] [--batch-bytes 1048576] [--rate R]
                      [--keys K] [--duration S] [--latency [--warmup-s S]]
  loadgen.py consume  --bootstrap B --topic T --records N
  loadgen.py e2e-consumer --bootstrap B --topic T --expect-file F --timeout S
  loadgen.py e2e-producer --bootstrap B --topic T --rate R --size S --duration S
  loadgen.py soak-producers --bootstrap B --topic T --producers P --rate R --keys K
                      --duration S      (one JSON line per minute)
  loadgen.py soak-consumer --bootstrap B --topic T --duration S
"""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
import sys
import threading
import time
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

STAMP = struct.Struct(">qq")  # send time (monotonic ns), sequence number
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _thread_cpu_s(tid: int) -> float:
    try:
        with open(f"/proc/self/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class CpuMeter:
    """Process and main-thread CPU seconds between start() and stop()."""

    def __init__(self) -> None:
        self.tid = threading.get_native_id()
        self.t0 = self.p0 = self.m0 = 0.0

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.p0 = time.process_time()
        self.m0 = _thread_cpu_s(self.tid)

    def stop(self) -> dict[str, float]:
        wall = max(time.perf_counter() - self.t0, 1e-9)
        return {
            "wall_s": wall,
            "client_cpu_cores": (time.process_time() - self.p0) / wall,
            "client_main_thread_busy": (_thread_cpu_s(self.tid) - self.m0) / wall,
        }


def _partitions(client: Producer | Consumer, topic: str) -> list[int]:
    deadline = time.monotonic() + 30
    while True:
        md = client.list_topics(topic, timeout=10)
        meta = md.topics.get(topic)
        if meta is not None and meta.error is None and meta.partitions:
            return sorted(meta.partitions)
        if time.monotonic() > deadline:
            raise SystemExit(f"topic {topic} has no partitions: {meta and meta.error}")
        time.sleep(0.1)


def _high_watermark(consumer: Consumer, topic: str, partition: int) -> int:
    """The end offset, retried: a new topic's leader may not answer at once."""
    deadline = time.monotonic() + 60
    while True:
        try:
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                        timeout=10)
            return int(high)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _payload(size: int, seed: int) -> bytes:
    # Incompressible-looking, fixed per run; the first 16 bytes are overwritten
    # with a timestamp where latency is measured.
    block = bytes((i * 131 + seed * 17 + (i >> 8) * 7) & 0xFF for i in range(256))
    return (block * (size // 256 + 1))[:size]


def produce(args: argparse.Namespace) -> dict[str, Any]:
    errors: list[str] = []

    latencies: list[float] = []
    skip = int(args.rate * args.warmup_s) if args.latency else 0
    delivered = [0]

    def on_error(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            if len(errors) < 1000:
                errors.append(str(err))
            return
        if args.latency:
            delivered[0] += 1
            lat = msg.latency()
            if lat is not None and delivered[0] > skip:
                latencies.append(lat)

    conf: dict[str, Any] = {
        "bootstrap.servers": args.bootstrap,
        "acks": args.acks,
        "linger.ms": args.linger_ms,
        "batch.size": args.batch_bytes,
        "batch.num.messages": 1_000_000,
        "queue.buffering.max.kbytes": 2_097_151,
        "queue.buffering.max.messages": 2_000_000,
        "message.max.bytes": max(args.batch_bytes + 65536, 1_000_000),
        "enable.idempotence": False,
        "delivery.report.only.error": not args.latency,
        "message.timeout.ms": 120_000,
        "error_cb": lambda e: errors.append(f"client: {e}") if len(errors) < 1000 else None,
    }
    producer = Producer(conf)
    parts = _partitions(producer, args.topic)
    value = _payload(args.size, 1)
    chunk = max(1, min(2000, (1 << 20) // max(args.size, 1)))
    keyed = args.keys > 0
    sent = 0
    meter = CpuMeter()
    meter.start()
    t_start = time.perf_counter()
    deadline = t_start + args.duration if args.duration > 0 else float("inf")
    step = 0
    while sent < args.records and time.perf_counter() < deadline:
        n = min(chunk, args.records - sent)
        if args.rate > 0:
            # Paced: never ahead of rate * elapsed.
            allowed = int((time.perf_counter() - t_start) * args.rate) - sent
            if allowed <= 0:
                producer.poll(0)
                time.sleep(0.0005)
                continue
            n = min(n, allowed)
        if keyed:
            batch = [{"key": b"k%08d" % ((sent + i) * 2654435761 % args.keys),
                      "value": value} for i in range(n)]
            queued = producer.produce_batch(args.topic, batch, on_delivery=on_error)
        else:
            batch = [{"value": value}] * n
            queued = producer.produce_batch(args.topic, batch, partition=parts[step % len(parts)],
                                            on_delivery=on_error)
        step += 1
        sent += queued
        if queued < n:
            producer.poll(0.001)  # queue full: let librdkafka drain
        else:
            producer.poll(0)
    remaining = producer.flush(180)
    stats = meter.stop()
    return {
        "records": sent - remaining,
        "bytes": (sent - remaining) * args.size,
        "records_per_s": (sent - remaining) / stats["wall_s"],
        "mib_per_s": (sent - remaining) * args.size / stats["wall_s"] / 1048576,
        "errors": len(errors),
        "first_errors": sorted(set(errors))[:3],
        "unflushed": remaining,
        **stats,
        **(_percentiles([int(x * 1e9) for x in latencies]) if args.latency else {}),
    }


def consume(args: argparse.Namespace) -> dict[str, Any]:
    """Assign-based (no consumer group): reads every partition from offset 0."""
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "bench-assign",  # required by the client; never joined
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "fetch.max.bytes": 52_428_800,
        "max.partition.fetch.bytes": 1_048_576,
        "queued.max.messages.kbytes": 262_144,
    })
    parts = _partitions(consumer, args.topic)
    got = 0
    nbytes = 0
    errors: list[str] = []
    meter = CpuMeter()
    meter.start()
    consumer.assign([TopicPartition(args.topic, p, 0) for p in parts])
    idle_deadline = time.monotonic() + args.timeout
    while got < args.records:
        msgs = consumer.consume(num_messages=10_000, timeout=0.5)
        if not msgs:
            if time.monotonic() > idle_deadline:
                break
            continue
        idle_deadline = time.monotonic() + args.timeout
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF and len(errors) < 100:
                    errors.append(str(err))
                continue
            got += 1
            nbytes += len(m)
    stats = meter.stop()
    consumer.close()
    return {
        "records": got,
        "bytes": nbytes,
        "records_per_s": got / stats["wall_s"],
        "mib_per_s": nbytes / stats["wall_s"] / 1048576,
        "errors": len(errors),
        "first_errors": sorted(set(errors))[:3],
        **stats,
    }


def _percentiles(samples_ns: list[int]) -> dict[str, float]:
    if not samples_ns:
        return {}
    s = sorted(samples_ns)

    def pct(q: float) -> float:
        return s[min(len(s) - 1, int(q * len(s)))] / 1e6

    return {"p50_ms": pct(0.50), "p99_ms": pct(0.99), "p999_ms": pct(0.999),
            "max_ms": s[-1] / 1e6, "samples": float(len(s))}


def _next_messages(consumer: Consumer) -> list[Message]:
    """Whatever has arrived, without waiting for a batch to fill: block for
    the first message only (consume(n, t) would wait for n messages or t)."""
    first = consumer.poll(0.2)
    if first is None:
        return []
    return [first, *consumer.consume(num_messages=1000, timeout=0)]


def e2e_consumer(args: argparse.Namespace) -> dict[str, Any]:
    """Assign at the current end of every partition; print 'ready'; measure
    receive time minus the send time stamped in each payload."""
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "bench-e2e",
        "socket.nagle.disable": True,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "fetch.wait.max.ms": 500,
    })
    parts = _partitions(consumer, args.topic)
    assignment = []
    for p in parts:
        assignment.append(TopicPartition(args.topic, p, _high_watermark(consumer, args.topic, p)))
    consumer.assign(assignment)
    consumer.consume(num_messages=1, timeout=0.2)
    print("ready", flush=True)
    t_ready = time.monotonic_ns()
    per_second: dict[int, list[int]] = {}
    lat: list[int] = []
    seen = 0
    expect = -1
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        msgs = _next_messages(consumer)
        now = time.monotonic_ns()
        for m in msgs:
            if m.error() is not None:
                continue
            v = m.value()
            if v is None or len(v) < STAMP.size:
                continue
            sent_ns, _seq = STAMP.unpack_from(v)
            lat.append(now - sent_ns)
            second = int((sent_ns - t_ready) // 1_000_000_000)
            if 0 <= second < 3600:
                per_second.setdefault(second, []).append(now - sent_ns)
            seen += 1
        if expect < 0 and os.path.exists(args.expect_file):
            with open(args.expect_file) as f:
                text = f.read().strip()
            if text:
                expect = int(text)
        if 0 <= expect <= seen:
            break
    consumer.close()
    p99_by_second = [round(_percentiles(per_second[k])["p99_ms"], 2) for k in sorted(per_second)]
    return {"received": seen, "expected": expect, **_percentiles(lat),
            "p99_ms_by_second": p99_by_second}


def e2e_producer(args: argparse.Namespace) -> dict[str, Any]:
    """Paced at --rate records/s, one produce() call per record."""
    errors: list[str] = []

    def on_error(err: KafkaError | None, _msg: Message) -> None:
        if err is not None and len(errors) < 100:
            errors.append(str(err))

    conf: dict[str, Any] = {
        "bootstrap.servers": args.bootstrap,
        "acks": args.acks,
        "linger.ms": args.linger_ms,
        "socket.nagle.disable": True,
        "enable.idempotence": False,
        "delivery.report.only.error": True,
    }
    if args.max_in_flight > 0:
        conf["max.in.flight.requests.per.connection"] = args.max_in_flight
    producer = Producer(conf)
    _partitions(producer, args.topic)
    body = bytearray(_payload(args.size, 2))
    sent = 0
    meter = CpuMeter()
    meter.start()
    t0 = time.perf_counter()
    end = t0 + args.duration
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        due = int((now - t0) * args.rate) - sent
        if due <= 0:
            producer.poll(0)
            time.sleep(0.0002)
            continue
        for _ in range(min(due, 1000)):
            STAMP.pack_into(body, 0, time.monotonic_ns(), sent)
            try:
                producer.produce(args.topic, bytes(body), on_delivery=on_error)
            except BufferError:
                producer.poll(0.001)
                break
            sent += 1
        producer.poll(0)
    remaining = producer.flush(60)
    stats = meter.stop()
    return {"records": sent - remaining, "errors": len(errors),
            "first_errors": sorted(set(errors))[:3],
            "mib_per_s": (sent - remaining) * args.size / stats["wall_s"] / 1048576, **stats}


class Histogram:
    """Log-bucketed latency histogram (2% buckets), mergeable across processes."""

    BASE = math.log(1.02)

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}

    def add_us(self, us: float) -> None:
        k = int(math.log(max(us, 1.0)) / self.BASE)
        self.buckets[k] = self.buckets.get(k, 0) + 1


def _soak_loop(args: argparse.Namespace, tick: Any, minute_extra: Any) -> None:
    """Run `tick()` until --duration, printing one JSON line per elapsed minute."""
    t0 = time.monotonic()
    minute = 0
    while True:
        now = time.monotonic()
        if now - t0 >= args.duration:
            break
        tick(now - t0)
        m = int((time.monotonic() - t0) // 60)
        if m > minute:
            print(json.dumps({"minute": minute, **minute_extra()}), flush=True)
            minute = m
    print(json.dumps({"minute": minute, "partial": True, **minute_extra()}), flush=True)


def soak_producers(args: argparse.Namespace) -> dict[str, Any]:
    """--producers producers in this process, keyed records, paced at --rate
    records/s in all; the ack latency of every record, per minute."""
    hist = Histogram()
    counts = {"acked": 0, "errors": 0, "sent": 0}
    first_errors: list[str] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            counts["errors"] += 1
            if len(first_errors) < 3:
                first_errors.append(str(err))
            return
        lat = msg.latency()
        if lat is not None:
            hist.add_us(lat * 1e6)
        counts["acked"] += 1

    producers = [Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": args.acks,
        "linger.ms": args.linger_ms,
        "enable.idempotence": False,
        "client.id": f"soak-{os.getpid()}-{i}",
    }) for i in range(args.producers)]
    for p in producers:
        _partitions(p, args.topic)
    value = _payload(args.size, 3)
    t_start = time.monotonic()
    state = {"sent": 0, "i": 0}

    def tick(elapsed: float) -> None:
        due = int(elapsed * args.rate) - state["sent"]
        if due <= 0:
            for p in producers:
                p.poll(0)
            time.sleep(0.001)
            return
        for _ in range(min(due, 5000)):
            i = state["i"]
            key = b"key-%06d" % (hash((os.getpid(), i)) % args.keys)
            try:
                producers[i % len(producers)].produce(args.topic, value, key=key,
                                                      on_delivery=on_delivery)
            except BufferError:
                break
            state["i"] = i + 1
            state["sent"] += 1
        for p in producers:
            p.poll(0)

    def minute_extra() -> dict[str, Any]:
        out = {"hist": hist.buckets.copy(), **counts, "sent": state["sent"],
               "first_errors": list(first_errors)}
        hist.buckets.clear()
        counts["acked"] = counts["errors"] = 0
        return out

    _ = t_start
    _soak_loop(args, tick, minute_extra)
    for p in producers:
        p.flush(30)
    return {"done": True, "sent": state["sent"]}


def soak_consumer(args: argparse.Namespace) -> dict[str, Any]:
    """Tails every partition; send-to-receive latency from the stamp in the
    record's timestamp (CreateTime, ms), per minute."""
    hist = Histogram()
    counts = {"received": 0, "errors": 0}
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "bench-soak",
        "socket.nagle.disable": True,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",  # deleted under us by retention: start over
    })
    parts = _partitions(consumer, args.topic)
    assignment = []
    for p in parts:
        assignment.append(TopicPartition(args.topic, p, _high_watermark(consumer, args.topic, p)))
    consumer.assign(assignment)

    def tick(_elapsed: float) -> None:
        msgs = _next_messages(consumer)
        now_ms = time.time() * 1000
        for m in msgs:
            if m.error() is not None:
                counts["errors"] += 1
                continue
            _kind, ts = m.timestamp()
            if ts > 0:
                hist.add_us(max(now_ms - ts, 0.001) * 1000)
            counts["received"] += 1

    def minute_extra() -> dict[str, Any]:
        out = {"hist": hist.buckets.copy(), **counts}
        hist.buckets.clear()
        counts["received"] = counts["errors"] = 0
        return out

    _soak_loop(args, tick, minute_extra)
    consumer.close()
    return {"done": True}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loadgen.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    for name in ("produce", "consume", "e2e-consumer", "e2e-producer", "soak-producers",
                 "soak-consumer"):
        p = sub.add_parser(name)
        p.add_argument("--bootstrap", required=True)
        p.add_argument("--topic", required=True)
        p.add_argument("--records", type=int, default=1_000_000)
        p.add_argument("--size", type=int, default=1024)
        p.add_argument("--acks", default="1")
        p.add_argument("--linger-ms", type=int, default=5)
        p.add_argument("--batch-bytes", type=int, default=1_048_576)
        p.add_argument("--rate", type=float, default=0.0)
        p.add_argument("--keys", type=int, default=0)
        p.add_argument("--duration", type=float, default=0.0)
        p.add_argument("--timeout", type=float, default=15.0)
        p.add_argument("--expect-file", default="")
        p.add_argument("--producers", type=int, default=10)
        p.add_argument("--max-in-flight", type=int, default=0,
                       help="e2e-producer: max.in.flight.requests.per.connection "
                            "(0: librdkafka's default, 1000000)")
        p.add_argument("--latency", action="store_true",
                       help="produce: ack latency percentiles of every record")
        p.add_argument("--warmup-s", type=float, default=0.0,
                       help="produce --latency: leave out the first seconds' records")
    args = parser.parse_args(argv)
    modes = {"produce": produce, "consume": consume,
             "e2e-consumer": e2e_consumer, "e2e-producer": e2e_producer,
             "soak-producers": soak_producers, "soak-consumer": soak_consumer}
    result = modes[args.mode](args)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
