"""`strom quotas describe|alter` against a real broker."""

from __future__ import annotations

from strom.testing import EmbeddedBroker
from tests.cli.conftest import ok, run_cli


def test_strom_quotas(fresh_broker: EmbeddedBroker) -> None:
    net = ["--bootstrap-server", fresh_broker.bootstrap]
    out = ok(run_cli("quotas", "alter", *net, "--user", "alice", "--set",
                     "producer_byte_rate=1048576", "--set", "consumer_byte_rate=2097152"))
    assert "Quotas of user=alice altered." in out.stdout
    ok(run_cli("quotas", "alter", *net, "--user-default", "--client-id", "app",
               "--set", "request_percentage=25"))
    ok(run_cli("quotas", "alter", *net, "--client-default", "--set",
               "controller_mutation_rate=5"))
    ok(run_cli("quotas", "alter", *net, "--user", "alice", "--delete", "consumer_byte_rate"))
    listed = ok(run_cli("quotas", "describe", *net, "--output", "json")).json()
    assert listed == [
        {"entity": {"client-id": None}, "quotas": {"controller_mutation_rate": 5.0}},
        {"entity": {"client-id": "app", "user": None}, "quotas": {"request_percentage": 25.0}},
        {"entity": {"user": "alice"}, "quotas": {"producer_byte_rate": 1048576.0}},
    ]
    table = ok(run_cli("quotas", "describe", *net, "--user-default")).stdout
    assert "client-id=app, user=<default>" in table and "request_percentage" in table
    assert "alice" not in table
    strict = ok(run_cli("quotas", "describe", *net, "--user-default", "--strict",
                        "--output", "json")).json()
    assert strict == []
    # Bad input: Kafka's message, exit code 1; no entity or no change: usage error.
    bad = run_cli("quotas", "alter", *net, "--user", "bob", "--set", "producer_byte_rate=-1")
    assert bad.code == 1
    assert "INVALID_REQUEST (Quota producer_byte_rate must be greater than 0)" in bad.stderr
    assert run_cli("quotas", "alter", *net, "--set", "producer_byte_rate=1").code == 2
    assert run_cli("quotas", "alter", *net, "--user", "bob").code == 2
    # validate-only changes nothing.
    ok(run_cli("quotas", "alter", *net, "--user", "carol", "--set", "producer_byte_rate=10",
               "--validate-only"))
    assert ok(run_cli("quotas", "describe", *net, "--user", "carol", "--output", "json")
              ).json() == []
