"""Broker cost of a full Fetch over 1,000 partitions, for two source trees
alternately: the A/B for the per-partition fetch path (the handler's loop,
the session layer, the response encoder) that a consumer without fetch
sessions pays on every fetch.

    .venv/bin/python bench/fetch_cost_ab.py /tmp/base . --requests 1000 --rounds 4
    .venv/bin/python bench/fetch_cost_ab.py /tmp/base . --instructions --requests 100

Each round starts a broker from each tree with
max.incremental.fetch.session.cache.slots=0 (as the consume1000 no-session
row), creates a 1,000-partition topic, writes one batch of 40 one-KiB records
to every partition, then sends the same Fetch v17 (every partition from
offset 0, asking for a session as the Java consumer does, no tagged fields)
`requests` times, 4 in flight. Its max_bytes is three and a half batches:
every response carries three batches and the offsets of the other 997
partitions, whose next batch is larger than the bytes left. That is the shape
of each fetch in the consume1000 row, where a 1 MiB fetch takes one or two
375-750 KB batches; the record bytes themselves cost the broker nothing here
(zero copy). The cost is the broker's CPU time from /proc, once its work
after the writes is done; with --instructions the broker runs under
valgrind's callgrind and the count is its instructions over the fetches
alone, which other load on the machine does not move.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from request_cost_ab import _call, _cpu_seconds, _frame, _free_port

from strom.cli.raw_request import read_frame
from strom.protocol.api import ApiKey
from strom.protocol.records import RecordSpec, build_batch

PARTITIONS = 1000
BATCH = build_batch([RecordSpec(value=b"v" * 1024) for _ in range(40)])
MAX_BYTES = 3 * len(BATCH) + len(BATCH) // 2
PER_PRODUCE = 100
IN_FLIGHT = 4
FETCH_VERSION = 17
NO_SESSIONS = "max.incremental.fetch.session.cache.slots"
#: The broker under callgrind, as `strom serve` runs it (uvloop, its GC settings).
SERVER = r'''
import sys
import uvloop
uvloop.install()
from strom.testing import EmbeddedBroker
broker = EmbeddedBroker(overrides={"max.incremental.fetch.session.cache.slots": "0"}).start()
from strom.cli.serve import _tune_gc
_tune_gc()
print(broker.port, flush=True)
sys.stdin.readline()
broker.stop()
'''


def _fill(sock: socket.socket) -> uuid.UUID:
    created = _call(sock, ApiKey.CREATE_TOPICS, 7, {
        "topics": [{"name": "t", "num_partitions": PARTITIONS, "replication_factor": 1,
                    "assignments": [], "configs": []}],
        "timeout": datetime.timedelta(seconds=120), "validate_only": False})
    topic_id: uuid.UUID = created.topics[0].topic_id
    for first in range(0, PARTITIONS, PER_PRODUCE):
        produced = _call(sock, ApiKey.PRODUCE, 9, {
            "transactional_id": None, "acks": 1, "timeout": datetime.timedelta(seconds=30),
            "topic_data": [{"name": "t", "partition_data": [
                {"index": i, "records": BATCH} for i in range(first, first + PER_PRODUCE)]}]})
        errors = {p.error_code for t in produced.responses for p in t.partition_responses}
        if errors != {0}:
            raise RuntimeError(f"produce failed: {errors}")
    return topic_id


def _fetch_frame(topic_id: uuid.UUID) -> bytes:
    return _frame(ApiKey.FETCH, FETCH_VERSION, {
        "cluster_id": None, "replica_state": {"replica_id": -1, "replica_epoch": -1},
        "max_wait": datetime.timedelta(milliseconds=0), "min_bytes": 1,
        "max_bytes": MAX_BYTES, "isolation_level": 0, "session_id": 0, "session_epoch": 0,
        "topics": [{"topic_id": topic_id, "partitions": [
            # As the Java consumer sends them: the epoch it knows, no tagged fields.
            {"partition": i, "current_leader_epoch": 0, "fetch_offset": 0,
             "last_fetched_epoch": -1, "log_start_offset": -1, "partition_max_bytes": 1 << 20,
             "replica_directory_id": None} for i in range(PARTITIONS)]}],
        "forgotten_topics_data": [], "rack_id": ""})


def _prepare(sock: socket.socket) -> bytes:
    """The topic filled; the fetch frame, checked once: three batches back."""
    sock.settimeout(600)
    frame = _fetch_frame(_fill(sock))
    sock.sendall(frame)
    size = len(read_frame(sock))
    if not 3 * len(BATCH) < size < MAX_BYTES + 100 * PARTITIONS:
        raise RuntimeError(f"a fetch returned {size} bytes, not three batches")
    return frame


def _send(sock: socket.socket, frame: bytes, requests: int) -> None:
    in_flight = 0
    for _ in range(requests):
        sock.sendall(frame)
        in_flight += 1
        if in_flight >= IN_FLIGHT:
            read_frame(sock)
            in_flight -= 1
    for _ in range(in_flight):
        read_frame(sock)


def _wait_quiet(pid: int, timeout: float = 60.0) -> None:
    """Until the broker's own work after the writes (flushes, checkpoints) is
    done: less than 10 ms of CPU in half a second, or `timeout`."""
    deadline = time.monotonic() + timeout
    before = _cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)  # sampling CPU time: there is no event to wait on
        now = _cpu_seconds(pid)
        if now - before < 0.01:
            return
        before = now


def _cpu(tree: str, requests: int) -> float:
    """Broker CPU seconds per fetch."""
    port = _free_port()
    data = tempfile.mkdtemp(prefix="fetch-cost-")
    proc = subprocess.Popen(
        [sys.executable, "-m", "strom", "serve", "--override",
         f"listeners=PLAINTEXT://127.0.0.1:{port}", "--override", f"log.dirs={data}",
         "--override", f"{NO_SESSIONS}=0"],
        env=dict(os.environ, PYTHONPATH=tree), cwd=tree,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), 1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)  # polling a port: there is no event to wait on
        with sock:
            frame = _prepare(sock)
            _wait_quiet(proc.pid)
            before = _cpu_seconds(proc.pid)
            _send(sock, frame, requests)
            return (_cpu_seconds(proc.pid) - before) / requests
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)


def _instructions(tree: str, requests: int) -> float:
    """Broker instructions per fetch (callgrind; bench/request_instructions.py)."""
    tree = os.path.abspath(tree)
    with tempfile.TemporaryDirectory(prefix="fetch-instructions-") as tmp:
        out = os.path.join(tmp, "callgrind.out")
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no",
             f"--callgrind-out-file={out}", sys.executable, "-c", SERVER],
            cwd=tree, env=dict(os.environ, PYTHONPATH=tree), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            port = int(proc.stdout.readline())
            with socket.create_connection(("127.0.0.1", port), 120) as sock:
                frame = _prepare(sock)
                _send(sock, frame, 5)  # warm
                subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True,
                               capture_output=True)
                _send(sock, frame, requests)
                subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True,
                               capture_output=True)
            proc.stdin.write("\n")
            proc.stdin.flush()
            proc.wait(600)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        total = 0
        for name in glob.glob(out + "*"):
            with open(name) as dump:
                total += next((int(line.split()[1]) for line in dump
                               if line.startswith("totals:")), 0)
        return total / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", help="the tree to compare against")
    parser.add_argument("head", help="the tree with the change")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions under callgrind (one round is enough)")
    args = parser.parse_args()
    measure = _instructions if args.instructions else _cpu
    unit, scale = ("instructions", 1.0) if args.instructions else ("us CPU", 1e6)
    base: list[float] = []
    head: list[float] = []
    for _ in range(args.rounds):
        base.append(measure(args.base, args.requests) * scale)
        head.append(measure(args.head, args.requests) * scale)
        print(f"base {base[-1]:,.0f}  head {head[-1]:,.0f} {unit} per fetch", flush=True)
    b, h = statistics.median(base), statistics.median(head)
    print(f"{args.requests:,} fetches of {PARTITIONS:,} partitions: median {unit} per fetch "
          f"base {b:,.0f}, head {h:,.0f}; head/base {h / b:.3f}")


if __name__ == "__main__":
    main()
