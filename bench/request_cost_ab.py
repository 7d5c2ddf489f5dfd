"""Broker CPU seconds per small request, for two source trees alternately: the
A/B for a change to the per-request path (the connection, the router, a
check every request pays) that batched benchmarks (bench/cpu_ab.py: a few
dozen 1 MB Produce requests) cannot see.

    .venv/bin/python bench/request_cost_ab.py /tmp/base . --requests 20000 --rounds 4
    .venv/bin/python bench/request_cost_ab.py /tmp/base . --quota producer_byte_rate

Each round starts a broker from each tree and sends Produce v9 requests of one
100-byte record (acks=1), 32 pipelined on one connection, reading the
broker's CPU time from /proc (10 ms ticks). --quota sets that client quota
(1e12: never reached, only recorded) for the benchmark's client id first.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from common import free_port, proc_cpu_s
from request_instructions import _send

from strom.cli.raw_request import read_frame
from strom.protocol.api import ApiKey, request_class, response_class
from strom.protocol.client_frames import decode_response, encode_request
from strom.protocol.messages import build
from strom.protocol.records import RecordSpec, build_batch

CLIENT_ID = "request-cost-ab"


def _frame(api_key: int, version: int, body: dict[str, Any], correlation_id: int = 1) -> bytes:
    return encode_request(build(request_class(api_key, version), body), correlation_id,
                          CLIENT_ID)


def _call(sock: socket.socket, api_key: int, version: int, body: dict[str, Any]) -> Any:
    sock.sendall(_frame(api_key, version, body))
    _, response = decode_response(read_frame(sock), response_class(api_key, version))
    return response


@contextlib.contextmanager
def serving(tree: str, overrides: dict[str, str]) -> Iterator[tuple[int, socket.socket]]:
    """`strom serve` from `tree` (its pid) and a connection to it."""
    port = free_port()
    data = tempfile.mkdtemp(prefix="request-cost-")
    argv = [sys.executable, "-m", "strom", "serve", "--override",
            f"listeners=PLAINTEXT://127.0.0.1:{port}", "--override", f"log.dirs={data}"]
    for key, value in overrides.items():
        argv += ["--override", f"{key}={value}"]
    proc = subprocess.Popen(argv, env=dict(os.environ, PYTHONPATH=tree), cwd=tree,
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
            yield proc.pid, sock
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)


def _run(tree: str, requests: int, quota: str | None) -> float:
    with serving(tree, {"num.partitions": "1"}) as (pid, sock):
        _call(sock, ApiKey.CREATE_TOPICS, 7, {
            "topics": [{"name": "t", "num_partitions": 1, "replication_factor": 1,
                        "assignments": [], "configs": []}],
            "timeout": datetime.timedelta(seconds=30), "validate_only": False})
        if quota:
            _call(sock, ApiKey.ALTER_CLIENT_QUOTAS, 1, {"validate_only": False, "entries": [
                {"entity": [{"entity_type": "client-id", "entity_name": CLIENT_ID}],
                 "ops": [{"key": quota, "value": 1e12, "remove": False}]}]})
        batch = build_batch([RecordSpec(value=b"v" * 100)])
        frame = _frame(ApiKey.PRODUCE, 9, {
            "transactional_id": None, "acks": 1, "timeout": datetime.timedelta(seconds=5),
            "topic_data": [{"name": "t", "partition_data": [{"index": 0,
                                                             "records": batch}]}]})
        before = proc_cpu_s(pid)
        _send(sock, [frame] * requests)
        return proc_cpu_s(pid) - before


def alternate(rounds: int, base: Callable[[], float], head: Callable[[], float],
              form: str) -> tuple[float, float]:
    """base and head measured in turn, `rounds` times each, every pair
    printed with `form`; their medians."""
    bases: list[float] = []
    heads: list[float] = []
    for _ in range(rounds):
        bases.append(base())
        heads.append(head())
        print(f"base {form.format(bases[-1])}  head {form.format(heads[-1])}", flush=True)
    return statistics.median(bases), statistics.median(heads)


def ab_parser(description: str | None, requests: int) -> argparse.ArgumentParser:
    """The arguments every A/B here takes: two trees, requests, rounds."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", help="the tree to compare against")
    parser.add_argument("head", help="the tree with the change")
    parser.add_argument("--requests", type=int, default=requests)
    parser.add_argument("--rounds", type=int, default=4)
    return parser


def main() -> None:
    parser = ab_parser(__doc__, 20_000)
    parser.add_argument("--quota", help="a client quota key to set for the client first")
    args = parser.parse_args()
    b, h = alternate(args.rounds, lambda: _run(args.base, args.requests, args.quota),
                     lambda: _run(args.head, args.requests, args.quota), "{:.2f} s")
    print(f"{args.requests:,} requests: median base {b:.2f} s, head {h:.2f} s CPU; "
          f"head/base {h / b:.3f} ({(h - b) / args.requests * 1e6:+.1f} us per request)")


if __name__ == "__main__":
    main()
