"""Machine instructions per one-record Produce request, counted by valgrind
(callgrind): the measure of per-request cost that other load on the machine
does not move (repeat runs agree within ~0.5% at acks=1; acks=all varies
~1-2% with how fsyncs group).

    .venv/bin/python bench/request_instructions.py /tmp/base . --requests 3000

A broker (strom.testing.EmbeddedBroker, all its threads) runs under callgrind
with instrumentation off; this process creates a one-partition topic, sends
300 warm-up requests, turns instrumentation on (callgrind_control -i on),
sends N Produce v9 requests of one 100-byte record (32 pipelined on one
connection), turns it off and reads callgrind's instruction total. Needs
valgrind (Debian: `apt-get install valgrind`). Each tree runs in turn, per acks.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import os
import socket
import subprocess
import sys
import tempfile
from typing import Any

from strom.cli.raw_request import read_frame
from strom.protocol.api import ApiKey, request_class
from strom.protocol.client_frames import encode_request
from strom.protocol.messages import build
from strom.protocol.records import RecordSpec, build_batch

SERVER = r'''
import sys
from strom.testing import EmbeddedBroker
broker = EmbeddedBroker(overrides={"num.partitions": "1"}).start()
print(broker.port, flush=True)
sys.stdin.readline()
broker.stop()
'''
PIPELINE = 32


def _frame(api_key: int, version: int, body: dict[str, Any]) -> bytes:
    return encode_request(build(request_class(api_key, version), body), 1,
                          "request-instructions")


def _send(sock: socket.socket, requests: int, frame: bytes) -> None:
    in_flight = 0
    for _ in range(requests):
        sock.sendall(frame)
        in_flight += 1
        if in_flight >= PIPELINE:
            read_frame(sock)
            in_flight -= 1
    for _ in range(in_flight):
        read_frame(sock)


def _instructions(tree: str, requests: int, acks: int) -> float:
    tree = os.path.abspath(tree)
    with tempfile.TemporaryDirectory(prefix="request-instructions-") as tmp:
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
                sock.settimeout(600)
                sock.sendall(_frame(ApiKey.CREATE_TOPICS, 7, {
                    "topics": [{"name": "t", "num_partitions": 1, "replication_factor": 1,
                                "assignments": [], "configs": []}],
                    "timeout": datetime.timedelta(seconds=30), "validate_only": False}))
                read_frame(sock)
                produce = _frame(ApiKey.PRODUCE, 9, {
                    "transactional_id": None, "acks": acks,
                    "timeout": datetime.timedelta(seconds=5),
                    "topic_data": [{"name": "t", "partition_data": [
                        {"index": 0, "records": build_batch([RecordSpec(value=b"v" * 100)])}]}]})
                _send(sock, 300, produce)
                subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True,
                               capture_output=True)
                _send(sock, requests, produce)
                subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True,
                               capture_output=True)
            proc.stdin.write("\n")
            proc.stdin.flush()
            proc.wait(300)
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
    parser.add_argument("trees", nargs="+")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--acks", type=int, action="append", help="1 or -1 (default: both)")
    args = parser.parse_args()
    for acks in args.acks or [1, -1]:
        counts = [_instructions(tree, args.requests, acks) for tree in args.trees]
        print(f"acks={acks}: " + ", ".join(
            f"{tree} {count:,.0f}" for tree, count in zip(args.trees, counts, strict=True))
            + " instructions/request"
            + (f"; head/base {counts[-1] / counts[0]:.3f}" if len(counts) > 1 else ""),
            flush=True)


if __name__ == "__main__":
    main()
