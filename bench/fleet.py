"""Workloads of many clients (issue 19), driven by the C generator (bench/rdkgen_src/).

  fleet      N paced producers (50 × 200 records/s, 1 KiB, acks=all, idempotent,
             linger.ms=0: one record per request), ack latency pooled over all
  conn1000   the same with 1,000 producers at 5 records/s each
  idle10k    10,000 idle connections (each served one ApiVersions) held while a
             paced producer runs: broker RSS and the load's ack latency
  group50    a consumer group of 50 members over 500 partitions: time until every
             member holds partitions, until a probe record written to every partition
             has been consumed, end-to-end latency of a paced load after that, time to
             rebalance after one member leaves; then more first joins, each of a
             fresh group on a fresh topic (GROUP_FIRST_JOINS in all): a first join is
             either one generation (~0.2 s) or two (~2 s) on Kafka as on strom
             (docs/benchmarks.md), so one per round left the median to chance;
             in each of those one member leaves too, at a delay after the join
             stepped over one heartbeat interval (GROUP_LEAVE_AFTER_S), and the
             median of those leaves is the row's: the others learn of a leave on
             their next Heartbeat (librdkafka's heartbeat.interval.ms, 3 s), so
             the main run's one leave timed where it fell in that interval
             (docs/benchmarks.md)

Broker CPU is read when the generator says its measured window starts and when
it ends, so set-up (1,000 producers connecting) is not in the per-record cost.
"""

from __future__ import annotations

import json
import resource
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import IO, Any

import rdkgen
from brokers import Broker
from common import children_cpu_s, kill_group, median, tail
from workloads import Context, Workload, WorkloadFailed, _new_topic

FLEET_PRODUCERS = 50
FLEET_RATE = 200  # records/s per producer
CONN_PRODUCERS = 1000
CONN_RATE = 5  # records/s per producer: 5,000 requests/s in all
IDLE_CONNECTIONS = 10_000
IDLE_LOAD_RATE = 5000  # 1 KiB records/s, acks=1, linger.ms=5 (5 MiB/s)
GROUP_MEMBERS = 50
GROUP_PARTITIONS = 500
GROUP_RATE = 2000  # 1 KiB records/s through the group
GROUP_FIRST_JOINS = 5  # first joins timed per round: the main run's and 4 more
# When a member of each of those 4 leaves, seconds after the join: one per quarter
# of librdkafka's 3 s heartbeat interval (the members heartbeat as they are
# assigned), so the leaves sample that interval evenly, as a leave at a random
# moment would on average; the main run's leave falls where its load ends.
GROUP_LEAVE_AFTER_S = (0.375, 1.125, 1.875, 2.625)
WARMUP_S = 3.0


@dataclass
class Phased:
    """One generator run: its final JSON, the broker's CPU cores over the
    measured window, and the generator's own CPU over its whole life."""
    out: dict[str, Any]
    broker_cpu_cores: float | None
    client_cpu_cores_total: float
    wall_s: float
    argv: list[str]


NOFILE_WANTED = 65536


def raise_nofile() -> int:
    """RLIMIT_NOFILE up to NOFILE_WANTED where allowed (root), else the soft
    limit up to the hard one; inherited by the brokers and clients started
    after this. The new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < NOFILE_WANTED:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE_WANTED, NOFILE_WANTED))
        except (ValueError, OSError):
            pass  # not privileged: the hard limit stays
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _argv(mode: str, bootstrap: str, topic: str | None, **opts: Any) -> list[str]:
    argv = [str(rdkgen.build()), mode, "--bootstrap", bootstrap]
    if topic:
        argv += ["--topic", topic]
    for k, v in opts.items():
        argv.append(f"--{k.replace('_', '-')}")
        if v != "":
            argv.append(str(v))
    return argv


def run_phased(broker: Broker, argv: list[str], timeout: float) -> Phased:
    """Run the generator; sample the broker's CPU at its {"phase": "measure"}
    line and at its final line."""
    cpu0 = children_cpu_s()
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True,
                                start_new_session=True)
        timer = threading.Timer(timeout, kill_group, args=(proc,))
        timer.start()
        try:
            lines, window = _read_phases(proc.stdout, broker)
            proc.wait()
        finally:
            timer.cancel()
            kill_group(proc)
        err.seek(0)
        stderr = err.read()
    wall = time.perf_counter() - t0
    try:
        out = rdkgen.parse_output("".join(lines))
    except ValueError:
        raise WorkloadFailed(f"rdkgen {argv[1]}: exit {proc.returncode}: "
                             f"{tail(stderr) or 'no output'}") from None
    if out.get("errors"):
        raise WorkloadFailed(f"rdkgen {argv[1]}: {out['errors']} errors, e.g. "
                             f"{'; '.join(out.get('first_errors', []))}")
    return Phased(out, window, (children_cpu_s() - cpu0) / max(wall, 1e-9), wall, argv)


def _read_phases(stdout: IO[str] | None, broker: Broker) -> tuple[list[str], float | None]:
    assert stdout is not None
    lines: list[str] = []
    mark: tuple[float, float] | None = None
    window: float | None = None
    for line in stdout:
        lines.append(line)
        if '"phase"' in line:
            mark = (time.perf_counter(), broker.cpu_s())
        elif line.startswith("{") and mark is not None:
            window = (broker.cpu_s() - mark[1]) / max(time.perf_counter() - mark[0], 1e-9)
    return lines, window


def _latency(out: dict[str, Any]) -> dict[str, float]:
    return {"lat_p50_ms": float(out["p50_ms"]), "lat_p99_ms": float(out["p99_ms"]),
            "lat_p999_ms": float(out["p999_ms"])}


def _detail(run: Phased) -> dict[str, Any]:
    d: dict[str, Any] = {"client_cpu_cores": float(run.out.get("client_cpu_cores", 0.0)),
                         "client_cpu_cores_total": run.client_cpu_cores_total,
                         "client_wall_s": run.wall_s, "command": " ".join(run.argv)}
    if run.broker_cpu_cores is not None:
        d["broker_cpu_cores"] = run.broker_cpu_cores
    for k in ("late_sends", "setup_s", "samples", "max_ms", "records_per_s", "sent",
              "produce_p50_ms", "produce_p99_ms"):
        if k in run.out:
            d[k] = run.out[k]
    return d


def _duration(ctx: Context) -> float:
    return max(10.0, ctx.sizes.e2e_seconds)


def _producers(key: str, producers: int, rate: float) -> Workload:
    def run(ctx: Context) -> tuple[dict[str, float], dict[str, Any]]:
        topic = _new_topic(ctx, key)
        duration = _duration(ctx)
        argv = _argv("fleet", ctx.broker.bootstrap, topic, producers=producers, rate=rate,
                     size=1024, acks="all", linger_ms=0, duration=duration, warmup_s=WARMUP_S)
        run_ = run_phased(ctx.broker, argv, duration + WARMUP_S + 180)
        expected = producers * rate * duration
        got = float(run_.out["records_per_s"]) * duration
        if got < 0.5 * expected:
            raise WorkloadFailed(f"{got:.0f} of {expected:.0f} records acknowledged in the "
                                 f"window: neither broker nor generator kept the pace")
        m = _latency(run_.out)
        m["records_per_s"] = float(run_.out["records_per_s"])
        if run_.broker_cpu_cores is not None:
            m["broker_cpu_us_per_record"] = run_.broker_cpu_cores / m["records_per_s"] * 1e6
        rss = ctx.broker.rss_kib()
        if rss:
            m["rss_mib"] = rss / 1024
        return m, _detail(run_)
    return run


w_fleet = _producers("fleet", FLEET_PRODUCERS, FLEET_RATE)
w_conn1000 = _producers("conn1000", CONN_PRODUCERS, CONN_RATE)


def w_idle10k(ctx: Context) -> tuple[dict[str, float], dict[str, Any]]:
    topic = _new_topic(ctx, "idle10k")
    limit = raise_nofile()
    if limit < IDLE_CONNECTIONS + 1000:
        raise WorkloadFailed(f"RLIMIT_NOFILE hard limit {limit} is below "
                             f"{IDLE_CONNECTIONS + 1000}: raise it (ulimit -Hn) to run this")
    rss_before = ctx.broker.rss_kib() or 0
    idle = subprocess.Popen(_argv("idle", ctx.broker.bootstrap, None,
                                  connections=IDLE_CONNECTIONS),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert idle.stdout is not None and idle.stdin is not None
        ready = json.loads(idle.stdout.readline() or "{}")
        if ready.get("connections") != IDLE_CONNECTIONS:
            raise WorkloadFailed(f"idle connections: {ready.get('connections', 0)} of "
                                 f"{IDLE_CONNECTIONS} opened: {ready.get('first_errors')}")
        rss_idle = ctx.broker.rss_kib() or 0
        duration = _duration(ctx)
        argv = _argv("produce", ctx.broker.bootstrap, topic,
                     records=int(IDLE_LOAD_RATE * (duration + WARMUP_S)), size=1024, acks="1",
                     linger_ms=5, rate=IDLE_LOAD_RATE, latency="", warmup_s=WARMUP_S)
        load = run_phased(ctx.broker, argv, duration + WARMUP_S + 120)
        rss_load = ctx.broker.rss_kib() or 0
        idle.stdin.close()  # the generator counts the connections still open, then exits
        final = rdkgen.parse_output(idle.stdout.read())
        idle.wait(60)
    finally:
        kill_group(idle)
    if final.get("alive", 0) < IDLE_CONNECTIONS:
        raise WorkloadFailed(f"the broker closed {IDLE_CONNECTIONS - final.get('alive', 0)} "
                             f"of {IDLE_CONNECTIONS} idle connections during the load")
    m = _latency(load.out)
    m["rss_mib"] = rss_load / 1024
    m["rss_per_idle_connection_kib"] = (rss_idle - rss_before) / IDLE_CONNECTIONS
    return m, {**_detail(load), "rss_before_mib": rss_before / 1024,
               "rss_idle_mib": rss_idle / 1024, "connect_s": ready.get("connect_s")}


def w_group50(ctx: Context) -> tuple[dict[str, float], dict[str, Any]]:
    topic = _new_topic(ctx, "group50", GROUP_PARTITIONS)
    duration = _duration(ctx)
    argv = _argv("group", ctx.broker.bootstrap, topic, members=GROUP_MEMBERS, rate=GROUP_RATE,
                 size=1024, duration=duration, warmup_s=WARMUP_S,
                 group=f"rdkgen-group50-r{ctx.round}")
    run_ = run_phased(ctx.broker, argv, duration + WARMUP_S + 400)
    out = run_.out
    if out.get("received", 0) < out.get("acked", 1):
        raise WorkloadFailed(f"the group received {out.get('received')} of {out.get('acked')}")
    if float(out.get("leave_rebalance_s", -1)) < 0:
        raise WorkloadFailed("after one member left, the others never held every partition")
    m = _latency(out)
    m["ready_s"] = float(out["ready_s"])
    joins = [float(out["rebalance_s"])]
    leaves = [float(out["leave_rebalance_s"])]
    afters = [GROUP_LEAVE_AFTER_S[i % len(GROUP_LEAVE_AFTER_S)]
              for i in range(GROUP_FIRST_JOINS - 1)]
    for i, after in enumerate(afters, 1):
        fresh = f"group50-join{i}-r{ctx.round}"
        ctx.broker.create_topic(fresh, GROUP_PARTITIONS)
        joined = first_join_leave(ctx.broker.bootstrap, fresh, f"rdkgen-{fresh}", after)
        joins.append(joined.rebalance_s)
        assert joined.leave_rebalance_s is not None
        leaves.append(joined.leave_rebalance_s)
        ctx.broker.delete_topic(fresh)
    # rebalance_s was the main run's one first join before; now the median of all.
    m["rebalance_s"] = median(joins)
    m["rebalance_first_s"] = joins[0]
    m["rebalance_min_s"] = min(joins)
    m["rebalance_max_s"] = max(joins)
    # leave_rebalance_s: the main run's one leave before; now the median of the four
    # leaves stepped over the heartbeat interval. The main run's leave falls wherever
    # its load ends in that interval: in a median of all five it picked which of the
    # middle two the median was (Kafka 1.9 and 1.2 s in two rounds at e1f8eb3).
    m["leave_rebalance_s"] = median(leaves[1:])
    m["leave_rebalance_first_s"] = leaves[0]
    m["leave_rebalance_min_s"] = min(leaves)
    m["leave_rebalance_max_s"] = max(leaves)
    return m, {**_detail(run_), "rebalance_runs_s": joins, "leave_rebalance_runs_s": leaves,
               "leave_after_s": [None, *afters]}


@dataclass
class FirstJoin:
    rebalance_s: float
    leave_rebalance_s: float | None = None  # with a leave: until the others hold all again


def first_join(bootstrap: str, topic: str, group: str, members: int = GROUP_MEMBERS,
               timeout: float = 300.0) -> float:
    """Seconds from `members` librdkafka consumers subscribing to `topic` as a new
    group until every partition is assigned and every member holds some."""
    return _first_join(bootstrap, topic, group, members, timeout, None).rebalance_s


def first_join_leave(bootstrap: str, topic: str, group: str, leave_after: float,
                     members: int = GROUP_MEMBERS, timeout: float = 300.0) -> FirstJoin:
    """A first join (as `first_join`), then `leave_after` seconds later one member
    closes: also the seconds from its close until the others hold every partition."""
    joined = _first_join(bootstrap, topic, group, members, timeout, leave_after)
    if joined.leave_rebalance_s is None or joined.leave_rebalance_s < 0:
        raise WorkloadFailed(f"first join of {group}: after one member left, the others "
                             f"never held every partition")
    return joined


def _first_join(bootstrap: str, topic: str, group: str, members: int, timeout: float,
                leave_after: float | None) -> FirstJoin:
    opts: dict[str, Any] = {"members": members, "group": group, "first_join": ""}
    if leave_after is not None:
        opts.update(leave="", leave_after=leave_after)
    argv = _argv("group", bootstrap, topic, **opts)
    try:
        run = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise WorkloadFailed(f"first join of {group}: no result in {timeout:.0f} s") from exc
    try:
        out = rdkgen.parse_output(run.stdout)
    except ValueError as exc:
        raise WorkloadFailed(f"first join of {group}: {tail(run.stderr)}") from exc
    if "rebalance_s" not in out:
        raise WorkloadFailed(f"first join of {group}: {out.get('first_errors')}")
    leave = out.get("leave_rebalance_s")
    return FirstJoin(float(out["rebalance_s"]), None if leave is None else float(leave))


#: (id, function, needs a sync of dirty pages first), run after workloads.WORKLOADS.
FLEET_WORKLOADS: list[tuple[str, Workload, bool]] = [
    ("fleet", w_fleet, True),
    ("conn1000", w_conn1000, True),
    ("idle10k", w_idle10k, True),
    ("group50", w_group50, True),
]
