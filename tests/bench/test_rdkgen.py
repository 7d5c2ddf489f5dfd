"""The C load generator (bench/rdkgen_src/): its argument handling, its output and
the pooled histogram merge the harness relies on. Figures are never asserted:
a short run against an embedded strom only shows the output is well formed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from strom.testing import EmbeddedBroker

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))  # bench/ modules import each other by bare name

import rdkgen  # noqa: E402

pytestmark = pytest.mark.skipif(not rdkgen.HEADER.exists(),
                                reason="librdkafka-dev is not installed "
                                       "(scripts/install-system-deps.sh)")


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return rdkgen.build(tmp_path_factory.mktemp("rdkgen") / "rdkgen")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(tmp_path_factory.mktemp("data")) as b:
        from confluent_kafka.admin import AdminClient
        from confluent_kafka.cimpl import NewTopic

        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        admin.create_topics([NewTopic("gen", 3, 1)])["gen"].result(30)
        yield b


def run(binary: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=60,
                          input=stdin)


@pytest.mark.parametrize(("args", "message"), [
    ((), "no mode given"),
    (("blast", "--bootstrap", "x:1"), "unknown mode 'blast'"),
    (("produce", "--topic", "t", "--records", "1"), "--bootstrap is required"),
    (("produce", "--bootstrap", "x:1", "--records", "1"), "--topic is required"),
    (("produce", "--bootstrap", "x:1", "--topic", "t"), "produce needs --records or --duration"),
    (("produce", "--bootstrap", "x:1", "--topic", "t", "--records", "1", "--acks", "2"),
     "--acks: expected 0, 1, all or -1"),
    (("fleet", "--bootstrap", "x:1", "--topic", "t", "--rate", "fast"),
     "--rate: expected a number >= 0, got 'fast'"),
    (("fleet", "--bootstrap", "x:1", "--topic", "t", "--producers", "0"),
     "--producers: expected an integer >= 1, got '0'"),
    (("fleet", "--bootstrap", "x:1", "--topic", "t", "--acks", "1"),
     "--idempotent needs --acks all"),
    (("consume", "--bootstrap", "x:1", "--topic", "t", "--records", "1", "--bogus"),
     "unknown or incomplete option '--bogus'"),
    (("consume", "--bootstrap", "x:1", "--topic", "t", "--records", "1", "--first-join"),
     "--first-join is for group only"),
    (("group", "--bootstrap", "x:1", "--topic", "t", "--leave"),
     "--leave and --leave-after are for group --first-join"),
    (("group", "--bootstrap", "x:1", "--topic", "t", "--first-join", "--leave-after", "1"),
     "--leave-after needs --leave"),
    (("consume", "--bootstrap", "x:1", "--topic", "t", "--records", "1", "--debug", "cgrp"),
     "--debug is for group only"),
])
def test_bad_arguments_exit_2_with_one_line(binary: Path, args: tuple[str, ...],
                                             message: str) -> None:
    res = run(binary, *args)
    assert res.returncode == 2
    assert res.stderr.splitlines()[0] == f"rdkgen: {message}"
    assert res.stdout == ""


def test_version_names_librdkafka(binary: Path) -> None:
    assert run(binary, "version").stdout.startswith("librdkafka 2.")


def test_produce_latency_histogram_matches_its_percentiles(binary: Path,
                                                           broker: EmbeddedBroker) -> None:
    res = run(binary, "produce", "--bootstrap", broker.bootstrap, "--topic", "gen",
              "--records", "400", "--size", "100", "--acks", "all", "--linger-ms", "0",
              "--latency")
    out = rdkgen.parse_output(res.stdout)
    assert out["errors"] == 0 and out["records"] == 400
    hist = rdkgen.hist_of(out)
    assert sum(hist.values()) == out["samples"] == 400
    for q, key in ((0.5, "p50_ms"), (0.99, "p99_ms"), (0.999, "p999_ms")):
        assert rdkgen.percentile_ms(hist, q, out["max_ms"]) == pytest.approx(out[key], abs=1e-3)
    both = rdkgen.pooled([out, out])
    assert both["samples"] == 800 and both["p99_ms"] == pytest.approx(out["p99_ms"], abs=1e-3)


def test_pooled_percentiles_are_not_averaged() -> None:
    fast = {"hist": [[100, 990]], "max_ms": 0.003}  # 990 acks in bucket 100 (~2.7 µs)
    slow = {"hist": [[700, 10]], "max_ms": 1100.0}  # 10 acks in bucket 700 (~1.06 s)
    p = rdkgen.pooled([fast, slow])
    assert p["samples"] == 1000
    assert p["p50_ms"] == pytest.approx(1.01 ** 101 / 1000)
    # The 10 slow acks are 1% of the pool: p99.9 is theirs; an average of the
    # two producers' p99.9 would be ~530 ms, the fast producer alone ~0.003.
    assert p["p999_ms"] == pytest.approx(1.01 ** 701 / 1000)


def test_fleet_reports_its_window_and_pooled_latency(binary: Path,
                                                     broker: EmbeddedBroker) -> None:
    res = run(binary, "fleet", "--bootstrap", broker.bootstrap, "--topic", "gen",
              "--producers", "3", "--rate", "40", "--duration", "1", "--warmup-s", "0.3",
              "--size", "200")
    lines = res.stdout.splitlines()
    assert lines[0] == '{"phase": "measure"}', res.stderr
    out = rdkgen.parse_output(res.stdout)
    assert out["errors"] == 0 and out["producers"] == 3
    assert out["samples"] > 0 and out["samples"] == sum(rdkgen.hist_of(out).values())
    assert out["sent"] == out["records"]


def test_idle_holds_connections_until_stdin_closes(binary: Path,
                                                   broker: EmbeddedBroker) -> None:
    res = run(binary, "idle", "--bootstrap", broker.bootstrap, "--connections", "20", stdin="")
    ready, final = [rdkgen.parse_output(line) for line in res.stdout.splitlines()]
    assert ready["ready"] is True and ready["connections"] == 20
    assert final["alive"] == 20 and final["errors"] == 0


def test_e2e_consumes_every_record_it_produced(binary: Path, broker: EmbeddedBroker) -> None:
    res = run(binary, "e2e", "--bootstrap", broker.bootstrap, "--topic", "gen", "--rate", "300",
              "--duration", "1", "--size", "64")
    out = rdkgen.parse_output(res.stdout)
    assert out["errors"] == 0 and out["records"] > 0
    assert out["received"] == out["records"] == out["samples"]


def test_group_first_join_stops_after_the_assignment(binary: Path,
                                                     broker: EmbeddedBroker) -> None:
    res = run(binary, "group", "--bootstrap", broker.bootstrap, "--topic", "gen",
              "--members", "3", "--group", "first-join", "--first-join")
    out = rdkgen.parse_output(res.stdout)
    assert (out["members"], out["partitions"]) == (3, 3), res.stderr
    assert out["rebalance_s"] >= 0 and "ready_s" not in out


def test_group_first_join_leave_times_the_reassignment(binary: Path,
                                                       broker: EmbeddedBroker) -> None:
    res = run(binary, "group", "--bootstrap", broker.bootstrap, "--topic", "gen",
              "--members", "3", "--group", "first-join-leave", "--first-join", "--leave",
              "--leave-after", "0.1")
    out = rdkgen.parse_output(res.stdout)
    assert (out["members"], out["partitions"]) == (3, 3), res.stderr
    assert out["rebalance_s"] >= 0 and out["leave_after_s"] == 0.1
    # The other two held all three partitions again (-1 if not within 120 s).
    assert out["leave_rebalance_s"] >= out["leave_close_s"] >= 0
