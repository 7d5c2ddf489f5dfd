#!/usr/bin/env python3
"""What a leader failure costs a producer: strom's cluster vs Apache Kafka's.

  python bench/failover.py                  # Kafka then strom, 3 rounds (12 signals each)
  python bench/failover.py --brokers kafka --rounds 5 --modes kill --targets leader

Each broker runs as a three-node cluster on localhost (bench/clusters.py),
one cluster at a time. Each round creates a topic with one partition,
replication factor 3 (min.insync.replicas 2), placed so that its leader is
(target `controller`) or is not (target `leader`) the cluster's active
controller: losing both at once costs a controller election too. A librdkafka
producer (confluent-kafka, acks=all, idempotent) sends small records to the
partition at a steady rate. The round waits until the partition has its three
replicas in sync and acknowledgements flow, then signals the partition's
leader:

- kill: SIGKILL. The cluster learns of it only when the broker's session
  (broker.session.timeout.ms, 9000 on both) expires.
- term: SIGTERM. Controlled shutdown: leadership moves before the process exits.

Measured per round, on the producer's clock: `resume_s`, the time from the
signal to the first acknowledgement after the gap it causes, and `gap_s`,
that gap (the longest interval without an acknowledgement, counted from the
last acknowledgement before the signal); `leader_moved_s`, when Metadata
(polled every 50 ms) first named another leader. The killed broker is then
restarted. At the end every round's topic is read back: every acknowledged
record must be there exactly once (lost / duplicated are counted).

Results: bench/results/failover-latest.json and failover-latest.md; medians
per broker and mode, and the strom/Kafka ratio. See docs/cluster.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from brokers import BrokerError
from clusters import (
    CLUSTER_SETTINGS,
    NODES,
    Cluster,
    KafkaCluster,
    StromCluster,
    admin_client,
)
from common import CACHE, PYTHON, ROOT, log, median
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from run import machine

RESULTS = ROOT / "bench" / "results"
SIGNALS = {"kill": signal.SIGKILL, "term": signal.SIGTERM}


class AckRecorder(threading.Thread):
    """Produces record `seq` (its value) every 1/rate s and keeps the producer-side
    time of each acknowledgement and each delivery error."""

    def __init__(self, bootstrap: str, topic: str, rate: float, first_seq: int) -> None:
        super().__init__(daemon=True)
        self.topic = topic
        self.rate = rate
        self.next_seq = first_seq
        self.acks: list[tuple[float, int]] = []
        self.errors: list[tuple[float, int, str]] = []
        self.unflushed = 0
        self.halt = threading.Event()
        self.config = {
            "bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
            # The outage is the measurement: no record may time out during it.
            "message.timeout.ms": 180000, "log_level": 0,
        }

    def _done(self, err: KafkaError | None, msg: Message) -> None:
        now = time.monotonic()
        seq = int(msg.value() or b"-1")
        if err is None:
            self.acks.append((now, seq))
        else:
            self.errors.append((now, seq, str(err)))

    def run(self) -> None:
        producer = Producer(self.config)
        interval = 1.0 / self.rate
        due = time.monotonic()
        while not self.halt.is_set():
            now = time.monotonic()
            if now >= due:
                try:
                    producer.produce(self.topic, value=str(self.next_seq).encode(), partition=0,
                                     on_delivery=self._done)
                except BufferError:
                    producer.poll(0.01)
                    continue
                self.next_seq += 1
                # Steady, never a burst to catch up after a stall of this process.
                due = max(due + interval, now - interval)
            producer.poll(max(0.0, min(0.005, due - time.monotonic())))
        self.unflushed = producer.flush(60)


def partition_state(admin: AdminClient, topic: str,
                    timeout: float = 1.0) -> tuple[int, list[int]] | None:
    """(leader, isr) of the topic's partition 0, None when Metadata does not answer."""
    try:
        md = admin.list_topics(topic, timeout=timeout)
    except KafkaException:
        return None
    meta = md.topics.get(topic)
    if meta is None or meta.error is not None or 0 not in meta.partitions:
        return None
    p = meta.partitions[0]
    return int(p.leader), [int(i) for i in p.isrs]


class LeaderWatcher(threading.Thread):
    """Polls Metadata every 50 ms (its own client, so a request stuck on the dead
    broker delays nothing else) until it names a leader other than `old`."""

    def __init__(self, bootstrap: str, topic: str, old: int) -> None:
        super().__init__(daemon=True)
        self.admin = admin_client(bootstrap)
        self.topic = topic
        self.old = old
        self.moved_at: float | None = None
        self.new_leader = -1
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            state = partition_state(self.admin, self.topic, timeout=0.5)
            if state is not None and state[0] not in (-1, self.old):
                self.new_leader = state[0]
                self.moved_at = time.monotonic()
                return
            self.halt.wait(0.05)


def wait_in_sync(admin: AdminClient, topic: str, timeout: float) -> int:
    """Until the partition has a leader and all three replicas in its ISR; the leader."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = partition_state(admin, topic)
        if state is not None and state[0] in NODES and sorted(state[1]) == list(NODES):
            return state[0]
        time.sleep(0.1)
    raise BrokerError(f"{topic}: not fully in sync after {timeout:.0f}s: (leader, isr) {state}")


def create_topic(admin: AdminClient, topic: str, replicas: list[int]) -> None:
    """One partition on `replicas`, the first its preferred (and first) leader."""
    # librdkafka wants the partition count with an assignment, and no replication factor.
    fut = admin.create_topics([NewTopic(topic, 1, replica_assignment=[replicas])],
                              operation_timeout=60, request_timeout=60)[topic]
    try:
        fut.result(timeout=90)
    except KafkaException as exc:
        raise BrokerError(f"CreateTopics {topic} (replicas {replicas}): {exc.args[0]}") from exc


def placement(target: str, controller: int | None, rnd: int) -> list[int]:
    """Replicas for a round's topic: the one to be signalled first (the leader).
    `controller`: the active controller leads; `leader`: another broker does."""
    if target == "controller" and controller in NODES:
        first = controller
    else:
        others = [n for n in NODES if n != controller]
        first = others[rnd % len(others)]
    return [first] + [n for n in NODES if n != first]


def gap_after(acks: list[float], t_signal: float) -> tuple[float, float, int] | None:
    """(gap start, gap end, acks after the signal before the gap): the longest
    interval between acknowledgements that ends after the signal."""
    times = sorted(acks)
    before = [t for t in times if t <= t_signal]
    after = [t for t in times if t > t_signal]
    if not after:
        return None
    prev = before[-1] if before else t_signal
    best = (prev, after[0], 0)
    for i, t in enumerate(after):
        if t - prev > best[1] - best[0]:
            best = (prev, t, i)
        prev = t
    return best


def one_round(cluster: Cluster, admin: AdminClient, mode: str, target: str, rnd: int,
              args: argparse.Namespace, first_seq: int) -> tuple[dict[str, Any], list[int], int]:
    """A fresh topic whose leader is (target `controller`) or is not (`leader`)
    the active controller, then the signal to its leader."""
    topic = f"failover-{mode}-{target}-{rnd}"
    create_topic(admin, topic, placement(target, cluster.controller(), rnd))
    leader = wait_in_sync(admin, topic, args.recovery_timeout)
    controller = cluster.controller()
    if (leader == controller) != (target == "controller"):
        log(f"{cluster.label} {topic}: leader {leader}, controller {controller}: "
            f"not the placement asked for (the round counts as what it is)")
    rec = AckRecorder(cluster.bootstrap(), topic, args.rate, first_seq)
    rec.start()
    row: dict[str, Any] = {"broker": cluster.name, "mode": mode, "target": target,
                           "round": rnd, "topic": topic, "killed_node": leader,
                           "controller_before": controller,
                           "killed_controller": controller == leader}
    try:
        deadline = time.monotonic() + 60
        while not rec.acks and time.monotonic() < deadline:
            time.sleep(0.02)
        if not rec.acks:
            raise BrokerError("no acknowledgement within 60 s before the signal")
        time.sleep(args.warm)  # steady state: acknowledgements flowing at the rate
        steady = [t for t, _ in rec.acks[-int(args.rate * args.warm * 0.8):]]
        t_signal = time.monotonic()
        cluster.signal(leader, SIGNALS[mode])
        watcher = LeaderWatcher(cluster.bootstrap(), topic, leader)
        watcher.start()
        exited_at: float | None = None
        end = t_signal + args.window
        while time.monotonic() < end:
            if exited_at is None and not cluster.alive(leader):
                exited_at = time.monotonic()
            last = rec.acks[-1][0] if rec.acks else 0.0
            moved_at = watcher.moved_at
            if moved_at is not None and last > max(moved_at, t_signal) + args.settle:
                break
            time.sleep(0.02)
        watcher.halt.set()
        watcher.join(10)
    finally:
        rec.halt.set()
        rec.join(90)
    ack_times = [t for t, _ in rec.acks]
    gap = gap_after(ack_times, t_signal)
    base_gaps = sorted(b - a for a, b in zip(steady, steady[1:], strict=False))
    moved_at, new_leader = watcher.moved_at, watcher.new_leader
    row.update({
        "new_leader": new_leader,
        "leader_moved_s": None if moved_at is None else round(moved_at - t_signal, 3),
        "sent": rec.next_seq - first_seq, "acked": len(rec.acks),
        "delivery_errors": len(rec.errors), "unflushed": rec.unflushed,
        "error_sample": sorted({e for _, _, e in rec.errors})[:3],
        "steady_gap_max_s": round(base_gaps[-1], 4) if base_gaps else None,
    })
    if gap is None or moved_at is None:
        row.update(status="failed", reason="leadership did not move" if moved_at is None
                   else "no acknowledgement after the signal")
    else:
        row.update(status="ok", resume_s=round(gap[1] - t_signal, 3),
                   gap_s=round(gap[1] - gap[0], 3), acked_after_signal_before_gap=gap[2])
    # Back to three in-sync replicas for the next round: the signalled broker
    # must be gone (SIGTERM: after its controlled shutdown), then restarted.
    if not cluster.wait_exit(leader, args.recovery_timeout):
        log(f"{cluster.label} node {leader} still running after {args.recovery_timeout}s; SIGKILL")
        cluster.signal(leader, signal.SIGKILL)
        cluster.wait_exit(leader, 30)
    if exited_at is None:
        exited_at = time.monotonic()
    # SIGTERM: how long the controlled shutdown took (to within 20 ms).
    row["exit_s"] = round(exited_at - t_signal, 3) if mode == "term" else None
    cluster.start_node(leader)
    # Back in this topic's ISR means registered, unfenced and caught up: the next
    # round's topic can then be placed on it (a broker still fenced is passed over
    # for leadership, and the round would not signal the leader it meant to).
    wait_in_sync(admin, topic, args.recovery_timeout)
    log(f"{cluster.label} {mode} round {rnd}: node {leader} "
        f"{'(controller) ' if row['killed_controller'] else ''}-> {new_leader}: "
        + (f"resume {row['resume_s']:.3f}s gap {row['gap_s']:.3f}s "
           f"leader moved {row['leader_moved_s']}s" if row["status"] == "ok"
           else row["reason"]))
    return row, [s for _, s in rec.acks], rec.next_seq


def read_back(bootstrap: str, topic: str, acked: list[int],
              timeout: float = 120.0) -> dict[str, int]:
    """Every acknowledged record read back: lost and duplicated counts."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "failover-check",
                         "enable.auto.commit": False, "log_level": 0,
                         "isolation.level": "read_committed"})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
        consumer.assign([TopicPartition(topic, 0, 0)])
        seen: Counter[int] = Counter()
        deadline = time.monotonic() + timeout
        position = 0
        while position < high and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=1):
                if msg.error() is None:
                    seen[int(msg.value() or b"-1")] += 1
                    position = (msg.offset() or 0) + 1
    finally:
        consumer.close()
    acked_set = set(acked)
    return {"acked": len(acked_set), "read": sum(seen.values()), "high_watermark": high,
            "lost": len(acked_set - set(seen)),
            "duplicated": sum(c - 1 for c in seen.values() if c > 1)}


def measure(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"label": cluster.label, "rounds": []}
    os.sync()
    try:
        out["startup_s"] = round(cluster.start(), 2)
        out["version"] = cluster.version()
        admin = admin_client(cluster.bootstrap())
        seq = 0
        acked: dict[str, list[int]] = {}
        for rnd in range(1, args.rounds + 1):
            for mode in args.modes:
                for target in args.targets:
                    row, ok, seq = one_round(cluster, admin, mode, target, rnd, args, seq)
                    out["rounds"].append(row)
                    acked[row["topic"]] = ok
        # Read back after every round's failover and restart, not just its own.
        check: Counter[str] = Counter()
        for topic, ok in acked.items():
            wait_in_sync(admin, topic, args.recovery_timeout)
            check.update(read_back(cluster.bootstrap(), topic, ok))
        out["check"] = dict(check)
        log(f"{cluster.label}: read back {out['check']}")
    except (BrokerError, KafkaException, subprocess.SubprocessError) as exc:
        # Rounds already measured are kept (and shown); the reason says where it stopped.
        out["status"] = "incomplete" if out["rounds"] else "not measured"
        out["reason"] = str(exc)
        log(f"{cluster.label}: {out['status']}: {exc}")
    finally:
        cluster.stop_all()
    return out


# Which rounds a figure covers: all, or split by whether the signalled leader
# was also the active controller (then a new controller must take over first:
# on Kafka a KRaft election, on strom an etcd election after the lease).
SUBSETS: dict[str, tuple[str, bool | None]] = {
    "all": ("", None), "leader": (", leader only", False),
    "leader+controller": (", leader was the controller", True)}


def summarize(doc: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for mode in doc["settings"]["modes"]:
        for subset, (_, ctl) in SUBSETS.items():
            for metric in ("resume_s", "gap_s", "leader_moved_s"):
                if subset != "all" and metric != "resume_s":
                    continue
                rows.append(figure(doc, mode, subset, ctl, metric))
    return rows


def figure(doc: dict[str, Any], mode: str, subset: str, ctl: bool | None,
           metric: str) -> dict[str, Any]:
    row: dict[str, Any] = {"mode": mode, "subset": subset, "metric": metric}
    for name, res in doc["brokers"].items():
        vals = [r[metric] for r in res.get("rounds", [])
                if r["mode"] == mode and r["status"] == "ok" and r[metric] is not None
                and (ctl is None or r["killed_controller"] == ctl)]
        row[name] = median(vals) if vals else None
        row[f"{name}_n"] = len(vals)
    k, s = row.get("kafka"), row.get("strom")
    row["ratio"] = s / k if k and s is not None else None
    return row


WHAT = {"resume_s": "signal → first ack after the gap", "gap_s": "longest gap in acks",
        "leader_moved_s": "signal → Metadata names a new leader"}


def markdown(doc: dict[str, Any]) -> str:
    b = doc["brokers"]

    def cell(name: str, row: dict[str, Any]) -> str:
        if name not in b or b[name].get("status") == "not measured":
            return "not measured"
        v = row.get(name)
        return "—" if v is None else f"{v:.2f} s (n={row[f'{name}_n']})"

    lines = [f"Failover: strom vs Apache Kafka {b.get('kafka', {}).get('version', '?')}, "
             f"three-node clusters — {doc['date']}, {doc['machine']['nproc']} cores",
             "", f"Command: `{doc['command']}` · {doc['settings']['rounds']} rounds of "
             f"{'/'.join(doc['settings']['modes'])} × {'/'.join(doc['settings']['targets'])}, "
             f"medians · producer acks=all, idempotent, {doc['settings']['rate']} records/s to "
             f"one partition (RF 3, min.insync.replicas 2) · broker.session.timeout.ms "
             f"{CLUSTER_SETTINGS['broker.session.timeout.ms']} on both · strom "
             f"{b.get('strom', {}).get('version', '?')}", "",
             "| leader signal | measure | Apache Kafka | strom | strom/Kafka |",
             "|---|---|---|---|---|"]
    for row in doc["figures"]:
        ratio = "—" if row["ratio"] is None else f"{row['ratio']:.2f}×"
        sig = ("kill -9" if row["mode"] == "kill" else "SIGTERM (controlled shutdown)") \
            + SUBSETS[row["subset"]][0]
        lines.append(f"| {sig} | {WHAT[row['metric']]} | {cell('kafka', row)} | "
                     f"{cell('strom', row)} | {ratio} |")
    lines.append("")
    for res in b.values():
        if res.get("status") == "not measured":
            lines.append(f"- {res['label']}: not measured: {res['reason']}")
            continue
        if res.get("status") == "incomplete":
            lines.append(f"- {res['label']}: stopped after {len(res['rounds'])} rounds: "
                         f"{res['reason']}")
        chk = res.get("check", {})
        killed_ctl = sum(1 for r in res["rounds"] if r.get("killed_controller"))
        failed = [r for r in res["rounds"] if r["status"] != "ok"]
        errors = sum(r["delivery_errors"] for r in res["rounds"])
        lines.append(f"- {res['label']}: {len(res['rounds'])} rounds "
                     f"({killed_ctl} where the leader was also the active controller, "
                     f"{len(failed)} failed), {errors} delivery errors; read back: "
                     f"{chk.get('acked', '?')} acknowledged, {chk.get('lost', '?')} lost, "
                     f"{chk.get('duplicated', '?')} duplicated; cluster start "
                     f"{res.get('startup_s', '?')} s")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--brokers", default="kafka,strom")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds; each signals once per mode and target (default 3)")
    parser.add_argument("--modes", default="kill,term", help="kill (SIGKILL), term (SIGTERM)")
    parser.add_argument("--targets", default="leader,controller",
                        help="leader: a leader that is not the active controller; controller: "
                             "a leader that is (each round creates a topic placed so)")
    parser.add_argument("--rate", type=float, default=200.0, help="records per second")
    parser.add_argument("--warm", type=float, default=2.0,
                        help="seconds of steady acknowledgements before the signal")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds of acknowledgements after the leader moved ending a round")
    parser.add_argument("--window", type=float, default=90.0,
                        help="longest wait for the partition to recover after a signal")
    parser.add_argument("--recovery-timeout", type=float, default=180.0)
    parser.add_argument("--data-dir", type=Path, default=CACHE / "bench" / "data")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.modes = args.modes.split(",")
    args.targets = args.targets.split(",")
    names = args.brokers.split(",")
    if bad := [m for m in args.modes if m not in SIGNALS] + \
            [t for t in args.targets if t not in ("leader", "controller")] + \
            [n for n in names if n not in ("kafka", "strom")]:
        parser.error(f"unknown: {bad}")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    cmd = " ".join(shlex.quote(a) for a in [os.path.relpath(PYTHON, ROOT),
                                           "bench/failover.py", *sys.argv[1:]])
    doc: dict[str, Any] = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": cmd, "machine": machine(),
        "settings": {"rounds": args.rounds, "modes": args.modes, "targets": args.targets,
                     "rate": args.rate,
                     "warm_s": args.warm, "settle_s": args.settle, "nodes": len(NODES),
                     "cluster": CLUSTER_SETTINGS,
                     "kafka_topology": "3 combined broker+controller nodes (KRaft, static quorum)",
                     "strom_topology": "etcd + 3 brokers (scripts/local-cluster.sh)"},
        "brokers": {},
    }
    t0 = time.perf_counter()
    for name in names:
        cluster: Cluster
        if name == "kafka":
            cluster = KafkaCluster(args.data_dir)
        else:
            reason = StromCluster.unavailable()
            if reason:
                log(f"strom not measured: {reason}")
                doc["brokers"]["strom"] = {"label": "strom", "status": "not measured",
                                           "reason": reason, "rounds": []}
                continue
            cluster = StromCluster(args.data_dir)
        log(f"{cluster.label}: three-node cluster, {args.rounds} rounds of {args.modes}")
        try:
            doc["brokers"][name] = measure(cluster, args)
        except KeyboardInterrupt:
            cluster.stop_all()
            raise
    doc["elapsed_s"] = round(time.perf_counter() - t0)
    doc["figures"] = summarize(doc)
    md = markdown(doc)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "failover-latest.json").write_text(json.dumps(doc, indent=1) + "\n")
    (args.out / "failover-latest.md").write_text(md)
    print(md)
    log(f"done in {doc['elapsed_s']}s: {args.out}/failover-latest.{{json,md}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
