"""Python function calls per small Produce request in the broker's event loop:
a deterministic measure of per-request cost that a loaded machine cannot blur
(bench/request_cost_ab.py gives CPU seconds, which swing with the load).

    .venv/bin/python bench/request_calls.py /tmp/base .            # both trees, acks=1 and all
    .venv/bin/python bench/request_calls.py . --top 25 --acks 1    # one tree, the top functions

An embedded broker (strom.testing.EmbeddedBroker) runs in a child process per
tree and per acks; cProfile is enabled in its event-loop thread only, while
the child's main thread sends N Produce v9 requests of one 100-byte record,
32 pipelined on one connection. Reported: function calls per request (cProfile
counts Python and C calls) and, with --top, the functions whose call counts
per request differ most between the trees (or the most called, for one tree).
--cpu-rounds N also runs N unprofiled rounds, trees alternating, reading the
event-loop thread's own CPU time (time.thread_time), the median per request.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Any

CHILD = r'''
import cProfile, datetime, json, pstats, socket, struct, sys, threading, time
from strom.testing import EmbeddedBroker
from strom.protocol.api import ApiKey, request_class
from strom.protocol.client_frames import encode_request
from strom.protocol.messages import build
from strom.protocol.records import RecordSpec, build_batch

requests, acks, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
size, idempotent, serve = int(sys.argv[4]), sys.argv[5] == "1", sys.argv[6] == "1"
if serve:  # as `strom serve` runs: uvloop, and its GC settings once started
    import uvloop
    uvloop.install()

def frame(api_key, version, body):
    return encode_request(build(request_class(api_key, version), body), 1, "request-calls")

def read_frame(sock):
    def exactly(n):
        data = bytearray()
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return bytes(data)
    (size,) = struct.unpack(">i", exactly(4))
    return exactly(size)

def send(sock, frames):
    in_flight = 0
    for data in frames:
        sock.sendall(data)
        in_flight += 1
        if in_flight >= 32:
            read_frame(sock)
            in_flight -= 1
    for _ in range(in_flight):
        read_frame(sock)

def on_loop(loop, fn):
    done = threading.Event()
    def run():
        fn()
        done.set()
    loop.call_soon_threadsafe(run)
    assert done.wait(30)

broker = EmbeddedBroker(overrides={"num.partitions": "1"}).start()
if serve:
    from strom.cli.serve import _tune_gc
    _tune_gc()
try:
    sock = socket.create_connection(("127.0.0.1", broker.port), 10)
    sock.sendall(frame(ApiKey.CREATE_TOPICS, 7, {
        "topics": [{"name": "t", "num_partitions": 1, "replication_factor": 1,
                    "assignments": [], "configs": []}],
        "timeout": datetime.timedelta(seconds=30), "validate_only": False}))
    read_frame(sock)
    pid, epoch = -1, -1
    if idempotent:
        sock.sendall(frame(ApiKey.INIT_PRODUCER_ID, 4, {
            "transactional_id": None, "transaction_timeout": datetime.timedelta(0),
            "producer_id": -1, "producer_epoch": -1}))
        body = read_frame(sock)
        # v4 response: header (correlation id, tagged fields), throttle, error, pid, epoch.
        pid, epoch = struct.unpack_from(">qh", body, 4 + 1 + 4 + 2)

    def produce(sequence):
        # Each request carries the next sequence as an idempotent producer's would.
        batch = build_batch([RecordSpec(value=b"v" * size, timestamp=int(time.time() * 1000))],
                            producer_id=pid, producer_epoch=epoch,
                            base_sequence=sequence if idempotent else -1)
        return frame(ApiKey.PRODUCE, 9, {
            "transactional_id": None, "acks": acks, "timeout": datetime.timedelta(seconds=5),
            "topic_data": [{"name": "t", "partition_data": [
                {"index": 0, "records": batch}]}]})
    send(sock, [produce(i) for i in range(500)])  # warm up: caches, first segment, lazy imports
    frames = [produce(500 + i) for i in range(requests)]
    if mode == "cpu":
        # CPU seconds of the event-loop thread alone (not the client's).
        marks = []
        on_loop(broker._loop, lambda: marks.append(time.thread_time()))
        send(sock, frames)
        on_loop(broker._loop, lambda: marks.append(time.thread_time()))
    else:
        profiler = cProfile.Profile()
        on_loop(broker._loop, profiler.enable)
        send(sock, frames)
        on_loop(broker._loop, profiler.disable)
    sock.close()
finally:
    broker.stop()
if mode == "cpu":
    print(json.dumps({"cpu": marks[1] - marks[0]}))
    sys.exit(0)
stats = pstats.Stats(profiler).stats
calls = {}
for (path, line, name), (cc, nc, tt, ct, callers) in stats.items():
    # Keyed without the line number, which moves between trees.
    key = f"{path.rsplit('/strom/', 1)[-1]}:{name}"
    calls[key] = calls.get(key, 0) + nc
print(json.dumps(calls))
'''


RECORD: dict[str, Any] = {"size": 100, "idempotent": False, "serve": False}


def _child(tree: str, requests: int, acks: int, mode: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(requests), str(acks), mode,
                          str(RECORD["size"]), "1" if RECORD["idempotent"] else "0",
                          "1" if RECORD["serve"] else "0"],
                         env=dict(os.environ, PYTHONPATH=os.path.abspath(tree)),
                         cwd=os.path.abspath(tree), check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _cpu_rounds(trees: list[str], requests: int, acks: int, rounds: int) -> None:
    """Loop-thread CPU per request, the trees alternating each round."""
    cpu: dict[str, list[float]] = {tree: [] for tree in trees}
    for _ in range(rounds):
        for tree in trees:
            cpu[tree].append(_child(tree, requests, acks, "cpu")["cpu"] / requests * 1e6)
    medians = [statistics.median(cpu[tree]) for tree in trees]
    print(f"acks={acks}: loop CPU per request, median of {rounds} rounds: " + ", ".join(
        f"{tree} {m:.1f} us ({' '.join(f'{v:.0f}' for v in cpu[tree])})"
        for tree, m in zip(trees, medians, strict=True)))
    if len(trees) == 2:
        print(f"  head/base {medians[1] / medians[0]:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trees", nargs="+", help="one tree, or base and head")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--acks", type=int, action="append",
                        help="1 or -1 (default: both)")
    parser.add_argument("--top", type=int, default=0, help="list this many functions")
    parser.add_argument("--cpu-rounds", type=int, default=0,
                        help="also measure the loop thread's CPU per request, unprofiled, "
                             "this many rounds alternating the trees")
    parser.add_argument("--cpu-requests", type=int, default=20_000)
    parser.add_argument("--record-size", type=int, default=100, help="value bytes (fleet: 1024)")
    parser.add_argument("--idempotent", action="store_true",
                        help="an idempotent producer (InitProducerId, a sequence per request; "
                             "the fleet row: --acks -1 --record-size 1024 --idempotent)")
    parser.add_argument("--serve", action="store_true",
                        help="the broker as `strom serve` runs it: on uvloop (whose calls "
                             "cProfile does not see), with its GC settings")
    args = parser.parse_args()
    RECORD.update(size=args.record_size, idempotent=args.idempotent, serve=args.serve)
    for acks in args.acks or [1, -1]:
        if args.cpu_rounds:
            _cpu_rounds(args.trees, args.cpu_requests, acks, args.cpu_rounds)
        per_tree = [_child(tree, args.requests, acks, "profile") for tree in args.trees]
        totals = [sum(c.values()) / args.requests for c in per_tree]
        print(f"acks={acks}: " + ", ".join(
            f"{tree} {total:.1f} calls/request"
            for tree, total in zip(args.trees, totals, strict=True)))
        if args.top and len(per_tree) == 2:
            base, head = per_tree
            diff = {key: (head.get(key, 0) - base.get(key, 0)) / args.requests
                    for key in base.keys() | head.keys()}
            for key, delta in sorted(diff.items(), key=lambda kv: -abs(kv[1]))[:args.top]:
                print(f"  {delta:+8.2f}  {key}")
        elif args.top:
            for key, count in sorted(per_tree[0].items(), key=lambda kv: -kv[1])[:args.top]:
                print(f"  {count / args.requests:8.2f}  {key}")


if __name__ == "__main__":
    main()
