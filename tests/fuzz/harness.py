"""A fuzz run against a real `strom serve` subprocess, with its verdict.

Before fuzzing, records are produced to a topic no fuzz frame can name; the
broker's RSS is read. Then frames are sent (tests/fuzz/driver.py) while the
process is watched: a death is a crash, whose last frames are written out
for replay, and the broker is restarted to go on. Afterwards the records are
read back and compared, RSS is read again, and the broker's log is searched
for ERROR lines and tracebacks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.fuzz.capture import load_frames
from tests.fuzz.driver import Stats, run
from tests.fuzz.frames import FrameSource, advertised, keep_small
from tests.fuzz.values import encode_frame, random_request
from tests.process import StromProcess

OVERRIDES = {
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.num.partitions": "1",
    "transaction.state.log.replication.factor": "1",
    "group.initial.rebalance.delay.ms": "0",
}
PRECIOUS_PARTITIONS = 3
PRECIOUS_RECORDS = 3000


@dataclasses.dataclass
class Report:
    stats: Stats
    seconds: float
    crashes: int
    crash_files: list[Path]
    error_lines: list[str]
    tracebacks: int
    rss_cold_kib: int  # before any request but the precious records'
    rss_start_kib: int  # after one well-formed request of every API and version
    rss_end_kib: int
    records_intact: bool
    records_detail: str

    @property
    def rss_growth(self) -> float:
        return self.rss_end_kib / self.rss_start_kib - 1

    def ok(self) -> bool:
        return (self.crashes == 0 and not self.error_lines and self.tracebacks == 0
                and self.records_intact and self.stats.out_of_order == 0)

    def format(self) -> str:
        s = self.stats
        kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(s.by_kind.items()))
        lines = [
            f"frames sent:          {s.frames_sent:,} in {self.seconds:.0f} s "
            f"({s.frames_sent / max(self.seconds, 1e-9):,.0f}/s)  [{kinds}]",
            f"answers:              {s.answers:,}; connections closed by the broker "
            f"{s.closed_by_broker:,}; given up unanswered {s.unanswered:,}; "
            f"answers out of order {s.out_of_order}",
            f"broker crashes:       {self.crashes}"
            + "".join(f"\n  frames before crash: {p}" for p in self.crash_files),
            f"ERROR lines in log:   {len(self.error_lines)}; tracebacks: {self.tracebacks}",
            *(f"  {line}" for line in self.error_lines[:10]),
            f"RSS before/after:     {self.rss_start_kib / 1024:.1f} MiB -> "
            f"{self.rss_end_kib / 1024:.1f} MiB ({self.rss_growth:+.0%}); "
            f"{self.rss_cold_kib / 1024:.1f} MiB before the first request of each API",
            f"records:              {self.records_detail}",
            "verdict:              " + ("OK" if self.ok() and self.rss_growth <= 0.2
                                        else "FAILED"),
        ]
        return "\n".join(lines)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def _produce_precious(bootstrap: str, topic: str) -> list[tuple[int, bytes, bytes]]:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, PRECIOUS_PARTITIONS, 1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 5})
    expected = []
    for i in range(PRECIOUS_RECORDS):
        key, value = f"key-{i}".encode(), f"value-{i}-".encode() * (1 + i % 7)
        partition = i % PRECIOUS_PARTITIONS
        producer.produce(topic, key=key, value=value, partition=partition)
        expected.append((partition, key, value))
    assert producer.flush(60) == 0, "precious records not acknowledged"
    return expected


def _read_back(bootstrap: str, topic: str,
               expected: list[tuple[int, bytes, bytes]]) -> tuple[bool, str]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"verify-{topic}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PRECIOUS_PARTITIONS)])
    got: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in range(PRECIOUS_PARTITIONS)}
    deadline = time.monotonic() + 60
    while sum(map(len, got.values())) < len(expected) and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error() is not None:
            continue
        assert message.offset() == len(got[message.partition()]), "offset gap"
        got[message.partition()].append((message.key(), message.value()))
    consumer.close()
    want: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in range(PRECIOUS_PARTITIONS)}
    for partition, key, value in expected:
        want[partition].append((key, value))
    read = sum(map(len, got.values()))
    if got == want:
        return True, f"{read:,}/{len(expected):,} read back, all intact"
    return False, f"{read:,}/{len(expected):,} read back, CONTENT DIFFERS"


def _warm_up(bootstrap: str, seed: int) -> None:
    """One well-formed request of every advertised API and version, so that the
    RSS baseline includes what any broker loads on first use (handler state,
    kio's compiled schemas), not only what fuzzing may leak."""
    host, port = bootstrap.rsplit(":", 1)
    source = FrameSource(seed, [])
    for api_key, version in advertised():
        body = random_request(api_key, version, source.rng)
        frame = keep_small(api_key, version, encode_frame(api_key, version, 1, body))
        with socket.create_connection((host, int(port)), timeout=1.0) as sock:
            sock.sendall(frame)
            try:
                sock.recv(1 << 16)  # an answer, or the close of a refused request
            except (TimeoutError, ConnectionError):
                pass  # a long poll or an acks=0 produce: nothing to wait for


def _still_writable(bootstrap: str, topic: str) -> tuple[bool, str]:
    """No input may stop the broker taking writes: one more record, acks=all."""
    from confluent_kafka import Producer

    errors: list[str] = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "message.timeout.ms": 30000})
    producer.produce(topic, key=b"after", value=b"fuzzing", partition=0,
                     on_delivery=lambda err, _msg: errors.append(str(err)) if err else None)
    if producer.flush(60) != 0:
        return False, "a record produced after fuzzing was not acknowledged"
    if errors:
        return False, f"a record produced after fuzzing failed: {errors[0]}"
    return True, "a record produced after fuzzing was acknowledged"


def _scan_log(text: str) -> tuple[list[str], int]:
    errors = [line for line in text.splitlines() if re.search(r"\bERROR\b", line)]
    return errors, text.count("Traceback (most recent call last)")


def fuzz(*, frames: int, connections: int, seed: int, work_dir: Path | None = None,
         answer_timeout: float = 1.0,
         on_progress: Callable[[Stats], None] | None = None) -> Report:
    with tempfile.TemporaryDirectory(prefix="strom-fuzz-") as tmp:
        base = work_dir or Path(tmp)
        broker = StromProcess(base / "data", overrides=OVERRIDES)
        broker.start()
        try:
            return _fuzz(broker, base, frames=frames, connections=connections, seed=seed,
                         answer_timeout=answer_timeout, on_progress=on_progress)
        finally:
            broker.stop()


def _fuzz(broker: StromProcess, base: Path, *, frames: int, connections: int, seed: int,
          answer_timeout: float, on_progress: Callable[[Stats], None] | None) -> Report:
    topic = f"precious-{uuid.uuid4().hex}"
    expected = _produce_precious(broker.bootstrap, topic)
    assert broker.proc is not None
    rss_cold = rss_kib(broker.proc.pid)
    _warm_up(broker.bootstrap, seed)
    rss_start = rss_kib(broker.proc.pid)
    crash_files: list[Path] = []
    stats = Stats()

    async def watch() -> None:
        while True:
            await asyncio.sleep(0.5)  # polling a child's exit status; no event to wait on
            assert broker.proc is not None
            if broker.proc.poll() is None:
                continue
            path = base / f"crash-{len(crash_files)}.frames"
            path.write_bytes(b"".join(stats.recent))
            crash_files.append(path)
            await asyncio.to_thread(broker.start)

    async def main() -> Stats:
        watcher = asyncio.create_task(watch())
        try:
            return await run("127.0.0.1", broker.port, frames=frames, connections=connections,
                             seed=seed, captured=load_frames(), answer_timeout=answer_timeout,
                             on_progress=on_progress, progress_every=10.0, stats=stats)
        finally:
            watcher.cancel()

    started = time.monotonic()
    asyncio.run(main())
    seconds = time.monotonic() - started
    if broker.proc is not None and broker.proc.poll() is not None:
        crash_files.append(base / "crash-final.frames")
        crash_files[-1].write_bytes(b"".join(stats.recent))
        broker.start()
    intact, detail = _read_back(broker.bootstrap, topic, expected)
    writable, write_detail = _still_writable(broker.bootstrap, topic)
    intact, detail = intact and writable, f"{detail}; {write_detail}"
    rss_end = rss_kib(broker.proc.pid)
    errors, tracebacks = _scan_log(broker.log_path.read_text(errors="replace"))
    return Report(stats, seconds, len(crash_files), crash_files, errors, tracebacks,
                  rss_cold, rss_start, rss_end, intact, detail)
