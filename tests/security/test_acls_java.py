"""Kafka's own kafka-acls.sh (org.apache.kafka.tools.AclCommand from the 4.4
jars in .cache/kafka, through scripts/kafka-tool) against strom: --add,
--list (also with MATCH), --remove --force, unchanged."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from strom.testing import EmbeddedBroker
from tests.interop.clients import run_kafka_tool

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which("java") is None:
        pytest.skip("java is not installed (make system-deps)")
    if not list((REPO / ".cache" / "kafka" / "libs").glob("kafka-tools-*.jar")):
        pytest.skip("Kafka jars missing (make kafka-jars)")
    with EmbeddedBroker(tmp_path_factory.mktemp("acls-java"), overrides={
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:ANONYMOUS"}) as broker:
        yield broker.bootstrap


def acls(bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_kafka_tool("acls", "--bootstrap-server",
                          bootstrap, *args, timeout=120)


def test_kafka_acls_add_list_remove(bootstrap: str) -> None:
    added = acls(bootstrap, "--add", "--allow-principal", "User:alice", "--operation", "Read",
                 "--topic", "orders", "--group", "g1").stdout
    assert "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)" in added
    acls(bootstrap, "--add", "--allow-principal", "User:bob", "--producer", "--topic", "pay-",
         "--resource-pattern-type", "prefixed")
    listed = acls(bootstrap, "--list").stdout
    for resource in ("resourceType=TOPIC, name=pay-, patternType=PREFIXED",
                     "resourceType=TOPIC, name=orders, patternType=LITERAL",
                     "resourceType=GROUP, name=g1, patternType=LITERAL"):
        assert resource in listed
    assert "(principal=User:bob, host=*, operation=CREATE, permissionType=ALLOW)" in listed
    match = acls(bootstrap, "--list", "--topic", "pay-eu", "--resource-pattern-type",
                 "match").stdout
    assert "name=pay-, patternType=PREFIXED" in match and "orders" not in match

    acls(bootstrap, "--remove", "--force", "--allow-principal", "User:alice", "--operation",
         "Read", "--topic", "orders")
    alice = acls(bootstrap, "--list", "--principal", "User:alice").stdout
    assert "name=g1" in alice and "name=orders" not in alice
