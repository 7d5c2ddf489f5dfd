"""The workloads of issue 6, each run against one live broker.

A workload returns a Result: metrics on success, or a failure with the reason
taken from the client's own output. The same client binary and the same
settings are used against every broker.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from brokers import Broker, BrokerError
from common import (
    JAVA_PERF_OPTS,
    KAFKA_TOOL,
    LOADGEN,
    PYTHON,
    Completed,
    kill_group,
    loadavg,
    log,
    run_client,
    tail,
)
from confluent_kafka import KafkaError, Message, Producer


@dataclass
class Sizes:
    rounds: int
    records_1k: int
    records_small: int
    warmup_records: int
    e2e_seconds: float
    p1000_seconds: float
    idle_wait_s: float
    client_timeout_s: float


QUICK = Sizes(rounds=2, records_1k=200_000, records_small=300_000, warmup_records=80_000,
              e2e_seconds=4, p1000_seconds=4, idle_wait_s=2, client_timeout_s=90)
FULL = Sizes(rounds=3, records_1k=1_500_000, records_small=3_000_000, warmup_records=500_000,
             e2e_seconds=30, p1000_seconds=30, idle_wait_s=10, client_timeout_s=300)

# The Java producer's 16 KiB default batches make the 1 KiB runs request-bound;
# 256 KiB batches measured fastest for it here (1 MiB was slower).
JAVA_PRODUCE_PROPS = {"batch.size": "262144", "linger.ms": "5"}
E2E_RATE = 20 * 1024  # 1 KiB records/s = 20 MiB/s
# linger.ms=0 at 20k records/s makes nearly every record its own ProduceRequest:
# that saturated Kafka's request path here (p50 ~100 ms) and measured request
# overhead, not latency. 1 ms gave Kafka p50 1.5 ms.
E2E_LINGER_MS = 1
# Spread over 1,000 partitions by random keys, 20 MiB/s saturated both brokers
# here (p99 ~25 s: a queue, not a latency); 5 MiB/s is a load both can carry.
P1000_RATE = 5 * 1024
P1000_PARTITIONS = 1000


@dataclass
class Result:
    workload: str
    broker: str
    round: int
    status: str  # ok | failed | skipped
    metrics: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


#: A Java perf tool that prints no progress line for this long is hung.
JAVA_STALL_S = 30.0


class WorkloadFailed(Exception):
    pass


class JavaHung(WorkloadFailed):
    pass


def _progress(run: Completed) -> str:
    sent = re.findall(r"^(\d+) records sent", run.stdout, re.M)
    return f"{sum(int(n) for n in sent)} records sent" if sent else "no record sent"


def _broker_log(broker: Broker) -> str:
    try:
        text = broker.log_path.read_text(errors="replace")
    except OSError:
        return "broker log empty"
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return "broker log: " + (tail(text, 1) or "empty")


# -- clients ------------------------------------------------------------------

PERF_LINE = re.compile(
    r"(\d+) (?:steady state )?records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), "
    r"([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99\.9th")


def _java_errors(text: str) -> list[str]:
    """Error lines of a Java tool's output; WARN log lines (retried metadata
    errors right after a topic is created) are not errors."""
    return [ln for ln in text.splitlines()
            if re.search(r"Exception|ERROR|WARNING: Exiting", ln) and "] WARN " not in ln
            and not ln.startswith("\tat ")]


def _java_error(run: Completed) -> str:
    lines = _java_errors(run.stderr + "\n" + run.stdout)
    if lines:
        return tail("\n".join(lines), 2)
    return tail(run.stderr or run.stdout, 2) or f"exit code {run.returncode}"


def producer_perf(broker: Broker, topic: str, records: int, size: int, props: dict[str, str],
                  timeout: float, throughput: int = -1, key_range: int = 0,
                  warmup: int = 0) -> tuple[dict[str, float], Completed]:
    """ProducerPerformance; with `warmup`, the figures are its steady-state
    summary (records after the first `warmup`)."""
    argv = [KAFKA_TOOL, "producer-perf", "--bootstrap-server", broker.bootstrap,
            "--topic", topic, "--num-records", str(records), "--record-size", str(size),
            "--throughput", str(throughput), "--command-property",
            *[f"{k}={v}" for k, v in props.items()]]
    if warmup:
        argv += ["--warmup-records", str(warmup)]
    if key_range:
        argv += ["--key-distribution", "random", "--record-key-range", str(key_range)]
    argv += ["--reporting-interval", "2000"]
    run = run_client(argv, timeout, env={"KAFKA_TOOL_JAVA_OPTS": JAVA_PERF_OPTS},
                     stall_s=JAVA_STALL_S)
    matches = PERF_LINE.findall(run.stdout)
    if run.timed_out:
        raise JavaHung(f"ProducerPerformance killed: no progress for {JAVA_STALL_S:.0f}s or "
                       f"over {timeout:.0f}s, {_progress(run)}; {_broker_log(broker)}")
    if run.returncode != 0 or not matches:
        raise WorkloadFailed(f"ProducerPerformance: {_java_error(run)}")
    sent, rps, _mbs, avg, mx, p50, p95, p99, p999 = matches[-1]
    if int(sent) < records - warmup:
        raise WorkloadFailed(f"ProducerPerformance sent {sent} of {records - warmup}: "
                             f"{_java_error(run)}")
    if _java_errors(run.stderr):
        raise WorkloadFailed(f"ProducerPerformance errors: {_java_error(run)}")
    rps_f = float(rps)
    return {
        "records_per_s": rps_f,
        "mib_per_s": rps_f * size / 1048576,
        "lat_avg_ms": float(avg), "lat_p50_ms": float(p50), "lat_p95_ms": float(p95),
        "lat_p99_ms": float(p99), "lat_p999_ms": float(p999), "lat_max_ms": float(mx),
    }, run


def consumer_perf(broker: Broker, topic: str, records: int,
                  timeout: float, print_metrics: bool = False,
                  props: dict[str, str] | None = None) -> tuple[dict[str, float], Completed]:
    argv = [KAFKA_TOOL, "consumer-perf", "--bootstrap-server", broker.bootstrap,
            "--topic", topic, "--num-records", str(records), "--timeout", "30000",
            "--group", f"bench-perf-{int(time.time() * 1000)}"]
    for k, v in (props or {}).items():
        argv += ["--command-property", f"{k}={v}"]
    if print_metrics:
        argv.append("--print-metrics")
    run = run_client(argv, timeout, env={"KAFKA_TOOL_JAVA_OPTS": JAVA_PERF_OPTS})
    if run.timed_out:
        raise JavaHung(f"ConsumerPerformance timed out after {timeout:.0f}s; "
                       f"{_broker_log(broker)}")
    rows = [ln.split(",") for ln in run.stdout.splitlines()
            if ln.count(",") >= 9 and not ln.startswith("start.time")]
    if run.returncode != 0 or not rows:
        raise WorkloadFailed(f"ConsumerPerformance: {_java_error(run)}")
    row = [c.strip() for c in rows[-1]]
    consumed = int(float(row[4]))
    if consumed < records:
        raise WorkloadFailed(f"ConsumerPerformance read {consumed} of {records}: "
                             f"{_java_error(run)}")
    fetch_mib_s = float(row[8])
    return {"mib_per_s": fetch_mib_s, "records_per_s": float(row[9]),
            "rebalance_ms": float(row[6])}, run


def loadgen(mode: str, broker: Broker, topic: str, client_timeout: float,
            **opts: Any) -> tuple[dict[str, Any], Completed]:
    return loadgen_at(broker.bootstrap, mode, topic, client_timeout, **opts)


#: Which librdkafka generator runs the produce and consume modes: "python"
#: (bench/loadgen.py over confluent-kafka) or "c" (bench/rdkgen_src/); run.py --client.
RDKAFKA_CLIENT = {"name": "python"}
C_MODES = {"produce", "consume", "e2e"}


def loadgen_at(bootstrap: str, mode: str, topic: str, client_timeout: float,
               **opts: Any) -> tuple[dict[str, Any], Completed]:
    """The librdkafka generator's `mode` against `bootstrap`; its JSON result and the run."""
    if RDKAFKA_CLIENT["name"] == "c" and mode in C_MODES:
        import rdkgen

        argv = [str(rdkgen.build()), mode, "--bootstrap", bootstrap, "--topic", topic]
    else:
        argv = [PYTHON, LOADGEN, mode, "--bootstrap", bootstrap, "--topic", topic]
    for k, v in opts.items():
        argv.append(f"--{k.replace('_', '-')}")
        if v != "":  # "" marks a flag without a value
            argv.append(str(v))
    run = run_client(argv, client_timeout)
    if run.timed_out:
        raise WorkloadFailed(f"librdkafka {mode} timed out after {client_timeout:.0f}s")
    try:
        out: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise WorkloadFailed(f"librdkafka {mode}: {tail(run.stderr)}") from None
    if out.get("errors"):
        raise WorkloadFailed(f"librdkafka {mode}: {out['errors']} errors, "
                             f"e.g. {'; '.join(out.get('first_errors', []))}")
    return out, run


# -- workloads ---------------------------------------------------------------

@dataclass
class Context:
    broker: Broker
    sizes: Sizes
    round: int
    topics: dict[str, str] = field(default_factory=dict)
    #: Set when a Java tool hung against this broker: the other Java runs fail fast.
    java_broken: str = ""


Workload = Callable[[Context], tuple[dict[str, float], dict[str, Any]]]


def _client_detail(run: Completed) -> dict[str, Any]:
    return {"client_cpu_cores": run.cpu_s / max(run.wall_s, 1e-9),
            "client_wall_s": run.wall_s, "command": " ".join(run.argv)}


def _new_topic(ctx: Context, key: str, partitions: int | None = None) -> str:
    topic = f"{key}-r{ctx.round}"
    ctx.broker.create_topic(topic, partitions)
    ctx.topics[key] = topic
    return topic


def _metrics(out: dict[str, Any], *keys: str) -> dict[str, float]:
    return {k: float(out[k]) for k in keys if k in out}


def w_produce_java(acks: str) -> Workload:
    def run(ctx: Context) -> tuple[dict[str, float], dict[str, Any]]:
        topic = _new_topic(ctx, f"produce-acks{acks}-java")
        m, r = producer_perf(ctx.broker, topic, ctx.sizes.records_1k, 1024,
                             {"acks": acks, **JAVA_PRODUCE_PROPS},
                             ctx.sizes.client_timeout_s, warmup=ctx.sizes.records_1k // 5)
        return m, _client_detail(r)
    return run


def w_produce_rdkafka(acks: str) -> Workload:
    def run(ctx: Context) -> tuple[dict[str, float], dict[str, Any]]:
        topic = _new_topic(ctx, f"produce-acks{acks}-rdkafka")
        out, r = loadgen("produce", ctx.broker, topic, ctx.sizes.client_timeout_s,
                         records=ctx.sizes.records_1k, size=1024, acks=acks, linger_ms=5,
                         batch_bytes=1048576)
        return (_metrics(out, "mib_per_s", "records_per_s"),
                {**_client_detail(r), **_metrics(out, "client_main_thread_busy")})
    return run


def _consume_source(ctx: Context) -> tuple[str, int]:
    topic = ctx.topics.get("produce-acks1-rdkafka") or ctx.topics.get("produce-acks1-java")
    if topic is None:
        raise WorkloadFailed("no produced topic to consume (the acks=1 produce runs failed)")
    return topic, ctx.sizes.records_1k


def w_consume_java(ctx: Context) -> tuple[dict[str, float], dict[str, Any]]:
    topic, records = _consume_source(ctx)
    m, r = consumer_perf(ctx.broker, topic, records, ctx.sizes.client_timeout_s)
    return m, _client_detail(r)


def w_consume_rdkafka(ctx: Context) -> tuple[dict[str, float], dict[str, Any]]:
    topic, records = _consume_source(ctx)
    out, r = loadgen("consume", ctx.broker, topic, ctx.sizes.client_timeout_s, records=records,
                     timeout=10)
    if out["records"] < records:
        raise WorkloadFailed(f"librdkafka consumer read {out['records']} of {records}")
    return (_metrics(out, "mib_per_s", "records_per_s"),
            {**_client_detail(r), **_metrics(out, "client_main_thread_busy")})


def w_small_java(ctx: Context) -> tuple[dict[str, float], dict[str, Any]]:
    topic = _new_topic(ctx, "small-java")
    m, r = producer_perf(ctx.broker, topic, ctx.sizes.records_small, 100,
                         {"acks": "1", "linger.ms": "0"}, ctx.sizes.client_timeout_s,
                         warmup=ctx.sizes.records_small // 5)
    return m, _client_detail(r)


def w_small_rdkafka(ctx: Context) -> tuple[dict[str, float], dict[str, Any]]:
    topic = _new_topic(ctx, "small-rdkafka")
    # 16 KiB batches, as the Java producer's default: the request rate is what counts.
    out, r = loadgen("produce", ctx.broker, topic, ctx.sizes.client_timeout_s,
                     records=ctx.sizes.records_small, size=100, acks="1", linger_ms=0,
                     batch_bytes=16384)
    return (_metrics(out, "records_per_s", "mib_per_s"),
            {**_client_detail(r), **_metrics(out, "client_main_thread_busy")})


def w_e2e(ctx: Context) -> tuple[dict[str, float], dict[str, Any]]:
    topic = _new_topic(ctx, "e2e")
    produce_to_each_partition(ctx.broker.bootstrap, topic, ctx.broker.partitions, 60)
    if RDKAFKA_CLIENT["name"] == "c":
        # Producer and consumer in one C process (bench/rdkgen_src/e2e.c).
        out, r = loadgen("e2e", ctx.broker, topic, ctx.sizes.e2e_seconds + 150,
                         rate=E2E_RATE, size=1024, acks="1", linger_ms=E2E_LINGER_MS,
                         duration=ctx.sizes.e2e_seconds)
        if out["received"] < out["records"]:
            raise WorkloadFailed(f"e2e consumer received {out['received']} of {out['records']}")
        return (_metrics(out, "p50_ms", "p99_ms", "p999_ms", "max_ms"),
                {**_client_detail(r), "producer_mib_per_s": out["mib_per_s"],
                 "samples": out.get("samples")})
    res, out, r = e2e_latency(ctx.broker.bootstrap, topic, E2E_RATE, ctx.sizes.e2e_seconds,
                              acks="1", linger_ms=E2E_LINGER_MS)
    return (_metrics(res, "p50_ms", "p99_ms", "p999_ms", "max_ms"),
            {**_client_detail(r), "producer_mib_per_s": out["mib_per_s"],
             "samples": res.get("samples"), "p99_ms_by_second": res.get("p99_ms_by_second")})


def e2e_latency(bootstrap: str, topic: str, rate: float, seconds: float, acks: str,
                linger_ms: int, max_in_flight: int = 0
                ) -> tuple[dict[str, Any], dict[str, Any], Completed]:
    """Producer timestamp -> consumer receive, 1 KiB records paced at `rate`
    records/s for `seconds`: (consumer result, producer result, producer run).
    The consumer starts at the end of every partition before the producer."""
    with tempfile.TemporaryDirectory() as tmp:
        expect = Path(tmp) / "expect"
        consumer = subprocess.Popen(
            [PYTHON, LOADGEN, "e2e-consumer", "--bootstrap", bootstrap, "--topic", topic,
             "--expect-file", str(expect), "--timeout", str(seconds + 60)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            assert consumer.stdout is not None
            ready = consumer.stdout.readline().strip()
            if ready != "ready":
                consumer.wait(5)
                err = consumer.stderr.read() if consumer.stderr else ""
                raise WorkloadFailed(f"e2e consumer: {tail(err)}")
            out, r = loadgen_at(bootstrap, "e2e-producer", topic, seconds + 60,
                                rate=rate, size=1024, acks=acks, linger_ms=linger_ms,
                                duration=seconds, max_in_flight=max_in_flight)
            expect.write_text(str(out["records"]))
            cout, cerr = consumer.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            raise WorkloadFailed("e2e consumer did not finish") from None
        finally:
            kill_group(consumer)
    try:
        res: dict[str, Any] = json.loads(cout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise WorkloadFailed(f"e2e consumer: {tail(cerr)}") from None
    if res.get("received", 0) < out["records"]:
        raise WorkloadFailed(f"e2e consumer received {res.get('received')} of {out['records']}")
    return res, out, r


def w_p1000(ctx: Context) -> tuple[dict[str, float], dict[str, Any]]:
    t0 = time.perf_counter()
    topic = _new_topic(ctx, "p1000", P1000_PARTITIONS)
    # Kafka lists leaders before every partition takes writes: measure from
    # the moment each partition has acknowledged one record.
    writable = produce_to_each_partition(ctx.broker.bootstrap, topic, P1000_PARTITIONS,
                                         timeout=ctx.sizes.client_timeout_s)
    if writable < P1000_PARTITIONS:
        raise WorkloadFailed(f"only {writable} of {P1000_PARTITIONS} partitions took a record")
    create_s = time.perf_counter() - t0
    # Keyed records spread over all 1,000 partitions, paced; the first 2 s are
    # left out of the percentiles. (ProducerPerformance was tried here: with a
    # 16 KiB buffer per open batch and ~1 record per batch, the Java client's
    # own buffer pool ran dry and its p50 reached seconds on both brokers.)
    seconds = ctx.sizes.p1000_seconds + 2
    out, r = loadgen("produce", ctx.broker, topic, ctx.sizes.client_timeout_s,
                     records=int(P1000_RATE * seconds), size=1024, acks="1", linger_ms=5,
                     rate=P1000_RATE, keys=100_000, latency="", warmup_s=2)
    rss = ctx.broker.rss_kib()
    return ({"rss_mib": (rss or 0) / 1024, "lat_p50_ms": float(out["p50_ms"]),
             "lat_p99_ms": float(out["p99_ms"]), "lat_p999_ms": float(out["p999_ms"])},
            {**_client_detail(r), "create_to_writable_s": create_s,
             "mib_per_s": out["mib_per_s"]})


def produce_to_each_partition(bootstrap: str, topic: str, partitions: int,
                              timeout: float) -> int:
    """One record to every partition, retried until acknowledged; how many were."""
    acked: set[int] = set()

    def done(err: KafkaError | None, msg: Message) -> None:
        if err is None:
            acked.add(msg.partition() or 0)

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 5,
                         "log_level": 2,  # not the retried NOT_LEADER warnings
                         "message.timeout.ms": int(timeout * 1000),
                         "retry.backoff.ms": 20, "retry.backoff.max.ms": 200})
    for p in range(partitions):
        producer.produce(topic, b"ready", partition=p, on_delivery=done)
    producer.flush(timeout)
    return len(acked)


# -- 1,000-partition consume: fetch sessions (KIP-227, issue 17) --------------

#: Kafka's setting; 0 slots: the broker creates no session, every Fetch is a
#: full one naming all the consumer's partitions (sessionless).
NO_SESSIONS = {"max.incremental.fetch.session.cache.slots": "0"}
#: Kafka's default (50 MiB) reads the whole backlog in a handful of fetches,
#: too few for a per-fetch cost to show. A 1 MiB cap makes ~1 fetch per MiB:
#: the regime sessions are for, a consumer of many partitions that each
#: bring a little data per fetch.
CONSUME1000_PROPS = {"fetch.max.bytes": "1048576"}
#: Numbers only: app-info's version ("4.4.0") and commit id are text.
METRIC_LINE = re.compile(r"^([\w-]+):([\w-]+):\{([^}]*)\}\s*:\s*"
                         r"(-?\d+(?:\.\d+)?(?:[Ee][-+]?\d+)?|NaN|-?Infinity)\s*$", re.M)


def parse_java_metrics(text: str) -> dict[tuple[str, str, str], float]:
    """--print-metrics lines of a Java tool, `group:name:{tags} : value`,
    keyed by (group, name, tags as printed)."""
    return {(g, n, tags): float(v) for g, n, tags, v in METRIC_LINE.findall(text)}


def fetch_bytes(metrics: dict[tuple[str, str, str], float]) -> dict[str, float]:
    """Bytes per request and per response on the consumer's connection to the
    partition leader: the one that carried the most bytes in (the records).
    That connection carries the Fetch requests; the coordinator and the
    bootstrap connection are apart (node ids 2147483647-n and -1)."""
    nodes: dict[str, dict[str, float]] = {}
    for (group, name, tags), value in metrics.items():
        if group == "consumer-node-metrics":
            nodes.setdefault(tags, {})[name] = value
    if not nodes:
        raise WorkloadFailed("ConsumerPerformance printed no consumer-node-metrics")
    leader = max(nodes.values(), key=lambda m: m.get("incoming-byte-total", 0.0))
    requests = leader.get("request-total", 0.0)
    responses = leader.get("response-total", requests)
    out = {"requests": requests,
           "request_bytes": leader.get("outgoing-byte-total", 0.0) / max(requests, 1.0),
           "response_bytes": leader.get("incoming-byte-total", 0.0) / max(responses, 1.0)}
    fetches = [v for (g, n, tags), v in metrics.items()
               if g == "consumer-fetch-manager-metrics" and n == "fetch-total"
               and "topic=" not in tags]
    if fetches:
        out["fetches"] = fetches[0]
    return out


def _consume1000(ctx: Context, broker: Broker, key: str) -> tuple[dict[str, float],
                                                                 dict[str, Any]]:
    topic = f"{key}-r{ctx.round}"
    broker.create_topic(topic, P1000_PARTITIONS)
    if produce_to_each_partition(broker.bootstrap, topic, P1000_PARTITIONS,
                                 timeout=ctx.sizes.client_timeout_s) < P1000_PARTITIONS:
        raise WorkloadFailed(f"not every one of {P1000_PARTITIONS} partitions took a record")
    records = ctx.sizes.records_1k // 2
    loadgen_at(broker.bootstrap, "produce", topic, ctx.sizes.client_timeout_s,
               records=records, size=1024, acks="1", linger_ms=5, keys=100_000)
    cpu0, t0 = broker.cpu_s(), time.perf_counter()
    m, r = consumer_perf(broker, topic, records, ctx.sizes.client_timeout_s,
                         print_metrics=True, props=CONSUME1000_PROPS)
    cpu = (broker.cpu_s() - cpu0) / max(time.perf_counter() - t0, 1e-9)
    per = fetch_bytes(parse_java_metrics(r.stdout))
    return ({"mib_per_s": m["mib_per_s"], "records_per_s": m["records_per_s"],
             "fetch_request_bytes": per["request_bytes"],
             "fetch_response_bytes": per["response_bytes"]},
            {**_client_detail(r), "broker_cpu_cores": cpu, "leader_requests": per["requests"],
             "fetches": per.get("fetches"), "records": records})


def w_consume1000_java(ctx: Context) -> tuple[dict[str, float], dict[str, Any]]:
    return _consume1000(ctx, ctx.broker, "consume1000")


def w_consume1000_java_nosession(ctx: Context) -> tuple[dict[str, float], dict[str, Any]]:
    """The same against a second broker of the same kind started with
    NO_SESSIONS (a static setting in Kafka and strom, so it needs its own
    process), beside the round's broker, which stays up and idle."""
    b = ctx.broker
    sibling = type(b)(b.data_root / "nosession", b.partitions, b.segment_bytes,
                      extra={**b.extra, **NO_SESSIONS})
    try:
        sibling.start()
    except BrokerError as exc:
        sibling.stop()
        raise WorkloadFailed(f"{b.name} with {NO_SESSIONS} did not start: {exc}") from None
    try:
        m, detail = _consume1000(ctx, sibling, "consume1000-nosession")
        return m, {**detail, "broker_rss_mib": (sibling.rss_kib() or 0) / 1024}
    finally:
        sibling.stop()
        sibling.cleanup()


def w_warmup(ctx: Context) -> tuple[dict[str, float], dict[str, Any]]:
    topic = _new_topic(ctx, "warmup")
    out, _ = loadgen("produce", ctx.broker, topic, ctx.sizes.client_timeout_s,
                     records=ctx.sizes.warmup_records, size=1024, acks="1")
    loadgen("consume", ctx.broker, topic, ctx.sizes.client_timeout_s,
            records=ctx.sizes.warmup_records, timeout=10)
    return _metrics(out, "mib_per_s"), {}


#: (id, function, needs a sync of dirty pages first)
WORKLOADS: list[tuple[str, Workload, bool]] = [
    ("warmup", w_warmup, False),
    ("produce_acks1_java", w_produce_java("1"), True),
    ("produce_acks1_rdkafka", w_produce_rdkafka("1"), True),
    ("produce_acksall_java", w_produce_java("all"), True),
    ("produce_acksall_rdkafka", w_produce_rdkafka("all"), True),
    ("consume_java", w_consume_java, False),
    ("consume_rdkafka", w_consume_rdkafka, False),
    ("small_java", w_small_java, True),
    ("small_rdkafka", w_small_rdkafka, True),
    ("e2e", w_e2e, True),
    ("p1000", w_p1000, True),
    ("consume1000_java", w_consume1000_java, True),
    ("consume1000_java_nosession", w_consume1000_java_nosession, True),
]


JAVA_WORKLOADS = {"produce_acks1_java", "produce_acksall_java", "consume_java", "small_java",
                  "consume1000_java", "consume1000_java_nosession"}


def run_workload(name: str, fn: Workload, ctx: Context, sync_first: bool,
                 skip_reason: str = "") -> Result:
    b = ctx.broker
    if skip_reason:
        return Result(name, b.name, ctx.round, "skipped", reason=skip_reason)
    if not b.alive():
        return Result(name, b.name, ctx.round, "failed", reason="broker process is not running")
    if ctx.java_broken and name in JAVA_WORKLOADS:
        return Result(name, b.name, ctx.round, "failed",
                      reason=f"not run: an earlier Java tool hung ({ctx.java_broken})")
    if sync_first:
        os.sync()  # writeback of earlier runs must not land on this one
    load = loadavg()
    cpu0 = b.cpu_s()
    t0 = time.perf_counter()
    try:
        metrics, detail = fn(ctx)
    except WorkloadFailed as exc:
        if isinstance(exc, JavaHung):
            ctx.java_broken = str(exc)
        log(f"  {b.name} {name}: FAILED {exc}")
        return Result(name, b.name, ctx.round, "failed", reason=str(exc),
                      detail={"broker_alive": b.alive()})
    except Exception as exc:  # a client library error is a failed workload too
        log(f"  {b.name} {name}: FAILED {type(exc).__name__}: {exc}")
        return Result(name, b.name, ctx.round, "failed", reason=f"{type(exc).__name__}: {exc}",
                      detail={"broker_alive": b.alive()})
    wall = time.perf_counter() - t0
    # A workload may have measured the broker's CPU over its own window (fleet.py).
    detail.setdefault("broker_cpu_cores", (b.cpu_s() - cpu0) / max(wall, 1e-9))
    detail.update({"loadavg_before": load, "wall_s": wall})
    shown = ", ".join(f"{k}={v:.1f}" for k, v in metrics.items())
    log(f"  {b.name} {name}: {shown}")
    return Result(name, b.name, ctx.round, "ok", metrics=metrics, detail=detail)
