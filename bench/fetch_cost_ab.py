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
`requests` times, 32 in flight. Its max_bytes is three and a half batches:
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

import datetime
import socket
import time
import uuid
from collections.abc import Callable

from common import proc_cpu_s
from request_cost_ab import _call, _frame, ab_parser, alternate, serving
from request_instructions import _send, count_instructions

from strom.cli.raw_request import read_frame
from strom.protocol.api import ApiKey
from strom.protocol.records import RecordSpec, build_batch

PARTITIONS = 1000
BATCH = build_batch([RecordSpec(value=b"v" * 1024) for _ in range(40)])
MAX_BYTES = 3 * len(BATCH) + len(BATCH) // 2
PER_PRODUCE = 100
FETCH_VERSION = 17
NO_SESSIONS = "max.incremental.fetch.session.cache.slots"
#: The broker under callgrind, as `strom serve` runs it (uvloop, its GC settings).
SERVER = r'''
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


def _wait_quiet(pid: int, timeout: float = 60.0) -> None:
    """Until the broker's own work after the writes (flushes, checkpoints) is
    done: less than 10 ms of CPU in half a second, or `timeout`."""
    deadline = time.monotonic() + timeout
    before = proc_cpu_s(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)  # sampling CPU time: there is no event to wait on
        now = proc_cpu_s(pid)
        if now - before < 0.01:
            return
        before = now


def _cpu(tree: str, requests: int) -> float:
    """Broker CPU seconds per fetch."""
    with serving(tree, {NO_SESSIONS: "0"}) as (pid, sock):
        frame = _prepare(sock)
        _wait_quiet(pid)
        before = proc_cpu_s(pid)
        _send(sock, [frame] * requests)
        return (proc_cpu_s(pid) - before) / requests


def _instructions(tree: str, requests: int) -> float:
    """Broker instructions per fetch, the broker under callgrind."""
    def drive(sock: socket.socket, switch: Callable[[bool], None]) -> None:
        frame = _prepare(sock)
        _send(sock, [frame] * 5)  # warm
        switch(True)
        _send(sock, [frame] * requests)
        switch(False)

    return count_instructions(tree, SERVER, [], drive) / requests


def main() -> None:
    parser = ab_parser(__doc__, 1000)
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions under callgrind (one round is enough)")
    args = parser.parse_args()
    measure = _instructions if args.instructions else _cpu
    unit, scale = ("instructions", 1.0) if args.instructions else ("us CPU", 1e6)
    b, h = alternate(args.rounds, lambda: measure(args.base, args.requests) * scale,
                     lambda: measure(args.head, args.requests) * scale,
                     "{:,.0f} " + unit + " per fetch")
    print(f"{args.requests:,} fetches of {PARTITIONS:,} partitions: median {unit} per fetch "
          f"base {b:,.0f}, head {h:,.0f}; head/base {h / b:.3f}")


if __name__ == "__main__":
    main()
