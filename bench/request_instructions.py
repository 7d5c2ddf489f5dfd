"""Machine instructions per one-record Produce request, counted by valgrind
(callgrind): the measure of per-request cost that other load on the machine
does not move (repeat runs agree within ~0.5% at acks=1; acks=all varies
~1-2% with how fsyncs group).

    .venv/bin/python bench/request_instructions.py /tmp/base . --requests 3000

A broker (strom.testing.EmbeddedBroker, all its threads) runs under callgrind
with instrumentation off; this process creates a one-partition topic, sends
300 warm-up requests, turns instrumentation on (callgrind_control -i on),
sends N Produce v9 requests of one 100-byte record (32 pipelined on one
connection), turns it off and reads callgrind's instruction total (--fetch:
Fetch requests of one record each instead). Needs
valgrind (Debian: `apt-get install valgrind`). Each tree runs in turn, per acks.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from strom.cli.raw_request import read_frame
from strom.protocol.api import ApiKey, request_class
from strom.protocol.client_frames import encode_request
from strom.protocol.messages import build
from strom.protocol.records import RecordSpec, build_batch

SERVER = r'''
import sys
serve = sys.argv[1:] == ["serve"]
if serve:  # as `strom serve` runs: uvloop, and its GC settings once started
    import uvloop
    uvloop.install()
from strom.testing import EmbeddedBroker
broker = EmbeddedBroker(overrides={"num.partitions": "1"}).start()
if serve:
    from strom.cli.serve import _tune_gc
    _tune_gc()
print(broker.port, flush=True)
sys.stdin.readline()
broker.stop()
'''
PIPELINE = [32]  # requests in flight on the connection (--pipeline)


def _frame(api_key: int, version: int, body: dict[str, Any]) -> bytes:
    return encode_request(build(request_class(api_key, version), body), 1,
                          "request-instructions")


def _send(sock: socket.socket, frames: list[bytes]) -> None:
    in_flight = 0
    for frame in frames:
        sock.sendall(frame)
        in_flight += 1
        if in_flight >= PIPELINE[0]:
            read_frame(sock)
            in_flight -= 1
    for _ in range(in_flight):
        read_frame(sock)


def _producer(sock: socket.socket) -> tuple[int, int]:
    """An idempotent producer's id and epoch (InitProducerId v4)."""
    sock.sendall(_frame(ApiKey.INIT_PRODUCER_ID, 4, {
        "transactional_id": None, "transaction_timeout": datetime.timedelta(0),
        "producer_id": -1, "producer_epoch": -1}))
    # Response header (correlation id, tagged fields), throttle, error, pid, epoch.
    pid, epoch = struct.unpack_from(">qh", read_frame(sock), 4 + 1 + 4 + 2)
    return int(pid), int(epoch)


def _produce_frames(acks: int, first: int, count: int, producer: tuple[int, int] | None,
                    size: int) -> list[bytes]:
    """Produce v9 requests of one record each; an idempotent producer's carry
    consecutive sequences from `first`."""
    pid, epoch = producer if producer is not None else (-1, -1)
    frames = []
    for sequence in range(first, first + count):
        batch = build_batch([RecordSpec(value=b"v" * size, timestamp=int(time.time() * 1000))],
                            producer_id=pid, producer_epoch=epoch,
                            base_sequence=sequence if producer is not None else -1)
        frames.append(_frame(ApiKey.PRODUCE, 9, {
            "transactional_id": None, "acks": acks,
            "timeout": datetime.timedelta(seconds=5),
            "topic_data": [{"name": "t", "partition_data": [{"index": 0, "records": batch}]}]}))
    return frames


def _fetch_frames(first: int, count: int) -> list[bytes]:
    """Fetch v12 requests, no session (as librdkafka sends them), each for one
    offset with partition_max_bytes 1: the one batch (one record) there."""
    return [_frame(ApiKey.FETCH, 12, {
        "replica_id": -1, "max_wait": datetime.timedelta(milliseconds=500), "min_bytes": 1,
        "max_bytes": 52428800, "isolation_level": 0, "session_id": 0, "session_epoch": -1,
        "topics": [{"topic": "t", "partitions": [{
            "partition": 0, "current_leader_epoch": -1, "fetch_offset": offset,
            "last_fetched_epoch": -1, "log_start_offset": -1, "partition_max_bytes": 1}]}],
        "forgotten_topics_data": [], "rack_id": ""}) for offset in range(first, first + count)]


def count_instructions(tree: str, server: str, server_args: list[str],
                       drive: Callable[[socket.socket, Callable[[bool], None]], None]) -> int:
    """Instructions counted by callgrind in a broker run from `tree` by the
    script `server` (it prints its port, and stops at a line on stdin) with
    instrumentation off: `drive` gets a connection to it and a switch, and
    counts only what it sends between switch(True) and switch(False)."""
    tree = os.path.abspath(tree)
    with tempfile.TemporaryDirectory(prefix="request-instructions-") as tmp:
        out = os.path.join(tmp, "callgrind.out")
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no",
             f"--callgrind-out-file={out}", sys.executable, "-c", server, *server_args],
            cwd=tree, env=dict(os.environ, PYTHONPATH=tree), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert proc.stdin is not None and proc.stdout is not None

        def switch(on: bool) -> None:
            subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(proc.pid)],
                           check=True, capture_output=True)

        try:
            port = int(proc.stdout.readline())
            with socket.create_connection(("127.0.0.1", port), 120) as sock:
                sock.settimeout(600)
                drive(sock, switch)
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
        return total


def _instructions(tree: str, requests: int, acks: int, options: argparse.Namespace) -> float:
    def drive(sock: socket.socket, switch: Callable[[bool], None]) -> None:
        sock.sendall(_frame(ApiKey.CREATE_TOPICS, 7, {
            "topics": [{"name": "t", "num_partitions": 1, "replication_factor": 1,
                        "assignments": [], "configs": []}],
            "timeout": datetime.timedelta(seconds=30), "validate_only": False}))
        read_frame(sock)
        producer = _producer(sock) if options.idempotent else None
        _send(sock, _produce_frames(acks, 0, 300, producer, options.record_size))
        frames = _produce_frames(acks, 300, requests, producer, options.record_size)
        if options.fetch:  # the records to fetch, then fetches of one record each
            _send(sock, frames)
            _send(sock, _fetch_frames(0, 300))
            frames = _fetch_frames(300, requests)
        switch(True)
        _send(sock, frames)
        switch(False)

    return count_instructions(tree, SERVER, ["serve"] if options.serve else [],
                              drive) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trees", nargs="+")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--acks", type=int, action="append", help="1 or -1 (default: both)")
    parser.add_argument("--record-size", type=int, default=100, help="value bytes (fleet: 1024)")
    parser.add_argument("--idempotent", action="store_true",
                        help="an idempotent producer (InitProducerId, a sequence per request; "
                             "the fleet row: --acks -1 --record-size 1024 --idempotent)")
    parser.add_argument("--serve", action="store_true",
                        help="the broker as `strom serve` runs it: on uvloop, with its GC "
                             "settings (gc.freeze after start, gen0 threshold 50,000)")
    parser.add_argument("--fetch", action="store_true",
                        help="count Fetch v12 requests of one record each (a consumer polling "
                             "one record at a time) instead of the Produce requests")
    parser.add_argument("--pipeline", type=int, default=32,
                        help="requests in flight (1: one at a time, each read one request)")
    args = parser.parse_args()
    PIPELINE[0] = args.pipeline
    for acks in args.acks or [1, -1]:
        counts = [_instructions(tree, args.requests, acks, args) for tree in args.trees]
        print(f"acks={acks}: " + ", ".join(
            f"{tree} {count:,.0f}" for tree, count in zip(args.trees, counts, strict=True))
            + " instructions/request"
            + (f"; head/base {counts[-1] / counts[0]:.3f}" if len(counts) > 1 else ""),
            flush=True)


if __name__ == "__main__":
    main()
