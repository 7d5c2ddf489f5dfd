"""`strom cluster` against a real cluster (etcd and `strom serve` processes):
status and under-replicated partitions, adding a broker and moving load onto
it, decommissioning one (its replicas reassigned away, then it stops, nothing
acknowledged lost), preferred leader elections. The documented procedures of
docs/cluster.md, step by step. Every wait has a deadline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.cli.conftest import Result, run_cli
from tests.cluster.brokers import WAIT, cluster_broker, cluster_of, read_values, registered_brokers
from tests.cluster.etcd_process import EtcdCluster
from tests.interop.clients import wait_until


def _cli(bootstrap: str, *args: str) -> Result:
    return run_cli(*args, "--bootstrap-server", bootstrap, "--timeout", "20")


def _ok(result: Result) -> Result:
    assert result.code == 0, f"exit {result.code}\n{result.stdout}\n{result.stderr}"
    return result


def _status(bootstrap: str) -> Any:
    return _ok(_cli(bootstrap, "cluster", "status", "--output", "json")).json()


def _move(bootstrap: str, tmp_path: Path, name: str, *generate: str) -> dict[str, Any]:
    """generate > plan, execute, verify --wait: the documented procedure."""
    plan = _ok(_cli(bootstrap, "cluster", "reassign", "generate", *generate,
                    "--output", "json")).json()
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(plan))
    _ok(_cli(bootstrap, "cluster", "reassign", "execute", str(path), "--throttle", "50000000"))
    verified = _ok(_cli(bootstrap, "cluster", "reassign", "verify", str(path), "--wait",
                        "--wait-timeout", str(WAIT), "--output", "json")).json()
    assert verified["completed"], verified
    return dict(plan)


def test_add_a_broker_then_decommission_one(etcd: EtcdCluster, tmp_path: Path) -> None:
    with registered_brokers(tmp_path, etcd, (1, 2, 3)) as started:
        bootstrap = ",".join(b.bootstrap for b in started)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic("load", 6, 2)])["load"].result(WAIT)
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                             "enable.idempotence": True})
        for n in range(600):
            producer.produce("load", f"v{n}".encode(), partition=n % 6)
        assert producer.flush(WAIT) == 0
        status = _status(bootstrap)
        assert status["partitions"] == 6 and status["under_replicated"] == 0
        assert status["controller"] in (1, 2, 3)
        assert "No under-replicated partitions." in _ok(
            _cli(bootstrap, "cluster", "under-replicated")).stdout

        # A fourth broker joins and gets its share: 12 replicas over 4 brokers.
        fourth = cluster_broker(tmp_path, etcd, 4)
        fourth.start(timeout=WAIT)
        try:
            wait_until(lambda: cluster_of(bootstrap, 4), WAIT, what="broker 4 registered")
            assert {b["id"]: b["replicas"] for b in _status(bootstrap)["brokers"]}[4] == 0
            plan = _move(bootstrap, tmp_path, "add-4", "--topic", "load", "--brokers",
                         "1,2,3,4")
            assert sum(4 in p["replicas"] for p in plan["partitions"]) == 3
            held = {b["id"]: b["replicas"] for b in _status(bootstrap)["brokers"]}
            assert held == {1: 3, 2: 3, 3: 3, 4: 3}
            # The throttle was cleared by verify.
            assert "Every reassignment is completed; throttles cleared." in _ok(_cli(
                bootstrap, "cluster", "reassign", "verify",
                str(tmp_path / "add-4.json"))).stdout

            # Broker 1 leaves: everything it holds moves, then it stops.
            _move(bootstrap, tmp_path, "drain-1", "--all-topics", "--brokers", "2,3,4")
            status = _status(bootstrap)
            assert {b["id"]: b["replicas"] for b in status["brokers"]}[1] == 0
            assert status["under_replicated"] == 0 and status["reassigning"] == 0
            elected = _cli(bootstrap, "cluster", "elect-leaders", "--all-topic-partitions")
            assert elected.code == 0, elected.stdout + elected.stderr
            started[0].terminate(timeout=WAIT)
            rest = ",".join(b.bootstrap for b in [*started[1:], fourth])
            wait_until(lambda: cluster_of(rest, 3), WAIT, what="broker 1 gone")
            assert "No under-replicated partitions." in _ok(
                _cli(rest, "cluster", "under-replicated")).stdout
            seen = read_values(rest, "load", 6, 600)
            assert sorted(v for values in seen.values() for v in values) == sorted(
                f"v{n}" for n in range(600))
        finally:
            fourth.stop()
