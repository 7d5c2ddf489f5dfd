"""Broker CPU seconds per full Fetch over 1,000 partitions, for two source
trees alternately: the A/B for the per-partition fetch path (the handler's
loop, the session layer, the response encoder) that a consumer without fetch
sessions pays on every fetch.

    .venv/bin/python bench/fetch_cost_ab.py /tmp/base . --requests 2000 --rounds 4

Each round starts a broker from each tree with
max.incremental.fetch.session.cache.slots=0 (as the consume1000 no-session
row), creates a 1,000-partition topic, writes one batch of 300 one-KiB
records to every partition (300 MB), then sends the same Fetch v17 (every
partition from offset 0, fetch.max.bytes 1 MiB, asking for a session as the
Java consumer does) `requests` times, 4 in flight, and reads the broker's CPU
time from /proc. Every response carries three batches (~0.9 MiB) and the
offsets of the other 997 partitions, whose next batch is larger than the
bytes left: the shape of each fetch in that row.
"""

from __future__ import annotations

import argparse
import datetime
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
#: One batch of 300 one-KiB records per partition: a 1 MiB fetch takes three
#: and the next one no longer fits, as in the consume1000 row (375-750 KB batches).
BATCH_RECORDS = 300
PER_PRODUCE = 25
IN_FLIGHT = 4
FETCH_VERSION = 17


def _fill(sock: socket.socket) -> uuid.UUID:
    created = _call(sock, ApiKey.CREATE_TOPICS, 7, {
        "topics": [{"name": "t", "num_partitions": PARTITIONS, "replication_factor": 1,
                    "assignments": [], "configs": []}],
        "timeout": datetime.timedelta(seconds=60), "validate_only": False})
    topic_id: uuid.UUID = created.topics[0].topic_id
    batch = build_batch([RecordSpec(value=b"v" * 1024) for _ in range(BATCH_RECORDS)])
    for first in range(0, PARTITIONS, PER_PRODUCE):
        produced = _call(sock, ApiKey.PRODUCE, 9, {
            "transactional_id": None, "acks": 1, "timeout": datetime.timedelta(seconds=30),
            "topic_data": [{"name": "t", "partition_data": [
                {"index": i, "records": batch} for i in range(first, first + PER_PRODUCE)]}]})
        errors = {p.error_code for t in produced.responses for p in t.partition_responses}
        if errors != {0}:
            raise RuntimeError(f"produce failed: {errors}")
    return topic_id


def _fetch_frame(topic_id: uuid.UUID) -> bytes:
    return _frame(ApiKey.FETCH, FETCH_VERSION, {
        "cluster_id": None, "replica_state": {"replica_id": -1, "replica_epoch": -1},
        "max_wait": datetime.timedelta(milliseconds=0), "min_bytes": 1,
        "max_bytes": 1 << 20, "isolation_level": 0, "session_id": 0, "session_epoch": 0,
        "topics": [{"topic_id": topic_id, "partitions": [
            {"partition": i, "current_leader_epoch": -1, "fetch_offset": 0,
             "last_fetched_epoch": -1, "log_start_offset": -1, "partition_max_bytes": 1 << 20,
             "replica_directory_id": uuid.UUID(int=0)} for i in range(PARTITIONS)]}],
        "forgotten_topics_data": [], "rack_id": ""})


def _run(tree: str, requests: int) -> float:
    port = _free_port()
    data = tempfile.mkdtemp(prefix="fetch-cost-")
    proc = subprocess.Popen(
        [sys.executable, "-m", "strom", "serve", "--override",
         f"listeners=PLAINTEXT://127.0.0.1:{port}", "--override", f"log.dirs={data}",
         "--override", "max.incremental.fetch.session.cache.slots=0"],
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
            sock.settimeout(60)
            frame = _fetch_frame(_fill(sock))
            sock.sendall(frame)
            first = read_frame(sock)
            if len(first) < 3 * 300 * 1024:
                raise RuntimeError(f"a fetch returned {len(first)} bytes: no records?")
            before = _cpu_seconds(proc.pid)
            in_flight = 0
            for _ in range(requests):
                sock.sendall(frame)
                in_flight += 1
                if in_flight >= IN_FLIGHT:
                    read_frame(sock)
                    in_flight -= 1
            for _ in range(in_flight):
                read_frame(sock)
            return _cpu_seconds(proc.pid) - before
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", help="the tree to compare against")
    parser.add_argument("head", help="the tree with the change")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    base: list[float] = []
    head: list[float] = []
    for _ in range(args.rounds):
        base.append(_run(args.base, args.requests))
        head.append(_run(args.head, args.requests))
        print(f"base {base[-1]:.2f} s  head {head[-1]:.2f} s", flush=True)
    b, h = statistics.median(base), statistics.median(head)
    print(f"{args.requests:,} fetches of {PARTITIONS:,} partitions: median base {b:.2f} s, "
          f"head {h:.2f} s CPU; head/base {h / b:.3f} "
          f"({(h - b) / args.requests * 1e6:+.0f} us per fetch)")


if __name__ == "__main__":
    main()
