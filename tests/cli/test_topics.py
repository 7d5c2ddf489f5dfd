"""`strom topics ...` end to end against the session broker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from strom.testing import EmbeddedBroker
from tests.cli.conftest import Cli, Result, ok, run_cli


def test_create_list_describe_alter_delete(cli: Cli, topic_name: str) -> None:
    created = ok(cli("topics", "create", topic_name, "--partitions", "3",
                     "--config", "retention.ms=123456"))
    assert f"Created topic '{topic_name}'." in created.stdout

    listed = ok(cli("topics", "list"))
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["TOPIC", "PARTITIONS", "REPLICATION-FACTOR"]
    row = next(r for r in rows if r.split()[0] == topic_name)
    assert row.split()[1:] == ["3", "1"]
    # aligned: every row's second column ends where the header's does
    end = header.index("PARTITIONS") + len("PARTITIONS")
    assert all(r[end - 1] != " " for r in rows)

    topics = ok(cli("topics", "list", "--output", "json")).json()
    mine = next(t for t in topics if t["topic"] == topic_name)
    assert mine == {"topic": topic_name, "partitions": 3, "replication_factor": 1,
                    "internal": False}

    ok(cli_produce(cli, topic_name, b"a\nb\n", "--partition", "1"))

    described = ok(cli("topics", "describe", topic_name, "--output", "json")).json()
    assert len(described) == 1
    doc = described[0]
    assert doc["topic"] == topic_name
    assert doc["configs"] == {"retention.ms": "123456"}
    assert [p["partition"] for p in doc["partitions"]] == [0, 1, 2]
    assert [(p["start_offset"], p["end_offset"]) for p in doc["partitions"]] == [
        (0, 0), (0, 2), (0, 0)]
    assert all(p["leader"] == 1 and p["replicas"] == [1] and p["isr"] == [1]
               for p in doc["partitions"])

    text = ok(cli("topics", "describe", topic_name)).stdout
    assert f"Topic: {topic_name}" in text and "retention.ms=123456" in text
    assert "PARTITION  LEADER  REPLICAS  ISR  START-OFFSET  END-OFFSET  RECORDS" in text

    altered = ok(cli("topics", "alter", topic_name, "--partitions", "5",
                     "--config", "cleanup.policy=compact", "--delete-config", "retention.ms"))
    assert "partitions 3 -> 5" in altered.stdout
    doc = ok(cli("topics", "describe", topic_name, "--output", "json")).json()[0]
    assert len(doc["partitions"]) == 5
    assert doc["configs"] == {"cleanup.policy": "compact"}

    deleted = ok(cli("topics", "delete", topic_name))
    assert f"Deleted topic '{topic_name}'." in deleted.stdout
    assert topic_name not in [t["topic"] for t in
                              ok(cli("topics", "list", "--output", "json")).json()]


def cli_produce(cli: Cli, topic: str, data: bytes, *args: str) -> Result:
    return cli("produce", topic, *args, stdin=data)


def test_create_existing_topic(cli: Cli, topic_name: str) -> None:
    ok(cli("topics", "create", topic_name))
    again = cli("topics", "create", topic_name)
    assert again.code == 1
    assert again.stderr.strip() == (
        f"strom topics create: error: topic '{topic_name}' already exists")
    tolerant = ok(cli("topics", "create", topic_name, "--if-not-exists", "--output", "json"))
    assert tolerant.json() == {"created": [], "existing": [topic_name], "validate_only": False}


def test_create_validate_only_creates_nothing(cli: Cli, topic_name: str) -> None:
    result = ok(cli("topics", "create", topic_name, "--validate-only", "-p", "2"))
    assert "Validated" in result.stdout
    assert cli("topics", "describe", topic_name).code == 1


def test_create_with_invalid_config_fails_with_kafka_error(cli: Cli, topic_name: str) -> None:
    result = cli("topics", "create", topic_name, "--config", "no.such.config=1")
    assert result.code == 1
    assert "INVALID_CONFIG" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_arguments_exit_2(cli: Cli, topic_name: str) -> None:
    for args in (["topics", "create", topic_name, "--config", "novalue"],
                 ["topics", "create", topic_name, "--partitions", "0"],
                 ["topics", "alter", topic_name],
                 ["topics", "create"],
                 ["topics", "frobnicate"]):
        result = cli(*args)
        assert result.code == 2, args
        assert "error:" in result.stderr


def test_unknown_topic(cli: Cli) -> None:
    for args in (["topics", "describe", "no-such-topic"],
                 ["topics", "delete", "no-such-topic"],
                 ["topics", "alter", "no-such-topic", "--partitions", "4"]):
        result = cli(*args)
        assert result.code == 1, args
        assert result.stderr.strip().endswith("error: unknown topic 'no-such-topic'"), args
    ok(cli("topics", "delete", "no-such-topic", "--if-exists"))


def test_partitions_cannot_shrink(cli: Cli, topic_name: str) -> None:
    ok(cli("topics", "create", topic_name, "--partitions", "3"))
    result = cli("topics", "alter", topic_name, "--partitions", "2")
    assert result.code == 1
    assert "INVALID_PARTITIONS" in result.stderr


def test_describe_all_topics(cli: Cli, topic_name: str) -> None:
    ok(cli("topics", "create", topic_name))
    names = [d["topic"] for d in ok(cli("topics", "describe", "--output", "json")).json()]
    assert topic_name in names
    assert names == sorted(names)


def test_delete_records_trims_partitions(cli: Cli, topic_name: str) -> None:
    ok(cli("topics", "create", topic_name, "--partitions", "2"))
    ok(cli_produce(cli, topic_name, b"0\n1\n2\n3\n4\n", "-p", "0"))
    ok(cli_produce(cli, topic_name, b"a\nb\nc\n", "-p", "1"))

    trimmed = ok(cli("topics", "delete-records", topic_name, "-p", "0", "--offset", "3"))
    assert trimmed.stdout.split() == ["PARTITION", "START-OFFSET", "0", "3"]
    values = ok(cli("consume", topic_name, "-p", "0", "-q")).stdout
    assert values == "3\n4\n"

    emptied = ok(cli("topics", "delete-records", topic_name, "--all", "--output", "json"))
    assert emptied.json() == {"topic": topic_name, "partitions": [
        {"partition": 0, "start_offset": 5}, {"partition": 1, "start_offset": 3}]}
    doc = ok(cli("topics", "describe", topic_name, "--output", "json")).json()[0]
    assert [(p["start_offset"], p["end_offset"]) for p in doc["partitions"]] == [(5, 5), (3, 3)]

    beyond = cli("topics", "delete-records", topic_name, "-p", "1", "--offset", "99")
    assert beyond.code == 1 and "OFFSET_OUT_OF_RANGE" in beyond.stderr, beyond.stderr
    rpk_name = ok(cli("topics", "trim-prefix", topic_name, "-p", "1", "--offset", "3"))
    assert rpk_name.stdout.split() == ["PARTITION", "START-OFFSET", "1", "3"]
    usage = cli("topics", "delete-records", topic_name)
    assert usage.code == 2 and "one of the arguments" in usage.stderr


def test_delete_records_before_timestamp(cli: Cli, topic_name: str) -> None:
    ok(cli("topics", "create", topic_name))
    ok(cli_produce(cli, topic_name, b"old-1\nold-2\n"))
    cut = int(time.time() * 1000) + 2
    deadline = time.monotonic() + 5
    while time.time() * 1000 <= cut and time.monotonic() < deadline:
        time.sleep(0.001)  # the records after `cut` need a later timestamp than it
    ok(cli_produce(cli, topic_name, b"new-1\n"))
    ok(cli("topics", "delete-records", topic_name, "--before-timestamp", str(cut)))
    assert ok(cli("consume", topic_name, "-q")).stdout == "new-1\n"
    # no record at or after the time: everything is older, everything goes
    ok(cli("topics", "delete-records", topic_name, "--before-timestamp",
           str(int(time.time() * 1000) + 3_600_000)))
    assert ok(cli("consume", topic_name, "-q")).stdout == ""


def test_describe_shows_overrides_apart_from_broker_defaults(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    overrides = {"log.retention.ms": "7200000", "log.segment.bytes": "1048576"}
    with EmbeddedBroker(tmp_path, overrides=overrides) as broker:
        monkeypatch.setenv("STROM_BOOTSTRAP_SERVER", broker.bootstrap)
        ok(run_cli("topics", "create", "inherits", "--config", "cleanup.policy=compact",
                   "--config", "segment.bytes=2097152"))
        doc = ok(run_cli("topics", "describe", "inherits", "--output", "json")).json()[0]
        assert doc["configs"] == {"cleanup.policy": "compact", "segment.bytes": "2097152"}
        assert doc["broker_defaults"] == {
            "retention.ms": {"value": "7200000", "source": "STATIC_BROKER_CONFIG"}}
        text = ok(run_cli("topics", "describe", "inherits")).stdout.splitlines()
        assert text[0].endswith("Configs: cleanup.policy=compact segment.bytes=2097152")
        assert text[1] == "Broker defaults: retention.ms=7200000 (STATIC_BROKER_CONFIG)"
