"""`strom acls add|list|remove` against a broker with the StandardAuthorizer
(its PLAINTEXT principal User:ANONYMOUS a super user)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from strom.testing import EmbeddedBroker
from tests.cli.conftest import ok, run_cli


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[list[str]]:
    with EmbeddedBroker(tmp_path / "data", overrides={
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:ANONYMOUS"}) as broker:
        yield ["-b", broker.bootstrap]


def _listed(b: list[str], *args: str) -> list[tuple[str, ...]]:
    found = ok(run_cli("acls", "list", *b, *args, "--output", "json")).json()["found"]
    return [(a["resource"], a["name"], a["pattern"], a["principal"], a["host"],
             a["operation"], a["permission"]) for a in found]


def test_add_list_remove(secured: list[str]) -> None:
    b = secured
    added = ok(run_cli("acls", "add", *b, "--allow-principal", "User:alice", "--operation",
                       "Read", "--operation", "describe", "--topic", "orders"))
    lines = added.stdout.splitlines()
    assert lines[0].split() == ["RESOURCE", "NAME", "PATTERN", "PRINCIPAL", "HOST",
                                "OPERATION", "PERMISSION"]
    assert len(lines) == 3
    ok(run_cli("acls", "add", *b, "--allow-principal", "User:svc", "--producer", "--topic",
               "pay-", "--resource-pattern-type", "prefixed"))
    ok(run_cli("acls", "add", *b, "--allow-principal", "User:bob", "--consumer", "--topic",
               "orders", "--group", "billing"))
    ok(run_cli("acls", "add", *b, "--deny-principal", "User:mallory", "--deny-host",
               "10.0.0.9", "--cluster"))
    everything = _listed(b)
    assert ("TOPIC", "orders", "LITERAL", "User:alice", "*", "READ", "ALLOW") in everything
    assert ("TOPIC", "pay-", "PREFIXED", "User:svc", "*", "CREATE", "ALLOW") in everything
    assert ("GROUP", "billing", "LITERAL", "User:bob", "*", "READ", "ALLOW") in everything
    assert ("CLUSTER", "kafka-cluster", "LITERAL", "User:mallory", "10.0.0.9", "ALL",
            "DENY") in everything
    assert len(everything) == 2 + 3 + 3 + 1
    # What applies to the topic pay-eu: the prefixed ACLs.
    assert {a[3] for a in _listed(b, "--topic", "pay-eu", "--resource-pattern-type",
                                  "match")} == {"User:svc"}
    assert {a[5] for a in _listed(b, "--principal", "User:alice")} == {"READ", "DESCRIBE"}

    removed = ok(run_cli("acls", "remove", *b, "--allow-principal", "User:alice",
                         "--operation", "Read", "--topic", "orders", "--output", "json"))
    assert [a["operation"] for a in removed.json()["removed"]] == ["READ"]
    ok(run_cli("acls", "remove", *b, "--topic", "orders"))
    assert [a for a in _listed(b) if a[1] == "orders"] == []
    assert "No ACLs removed." in ok(run_cli("acls", "remove", *b, "--topic", "orders")).stdout


def test_bad_arguments(secured: list[str]) -> None:
    b = secured
    for args, message in [
        (["--allow-principal", "User:a", "--operation", "Fly", "--topic", "t"],
         "unknown operation"),
        (["--allow-principal", "alice", "--topic", "t"], "TYPE:NAME"),
        (["--allow-principal", "User:a"], "name a resource"),
        (["--topic", "t"], "--allow-principal"),
        (["--allow-principal", "User:a", "--consumer", "--topic", "t"], "--group"),
    ]:
        result = run_cli("acls", "add", *b, *args)
        assert result.code == 2 and message in result.stderr, (args, result.stderr)


def test_without_an_authorizer(fresh_broker: EmbeddedBroker) -> None:
    result = run_cli("acls", "add", "-b", fresh_broker.bootstrap, "--allow-principal",
                     "User:a", "--topic", "t")
    assert result.code == 1 and "SECURITY_DISABLED" in result.stderr
