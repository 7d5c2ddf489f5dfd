"""`strom configs describe|alter` for topics and brokers."""

from __future__ import annotations

from strom.testing import EmbeddedBroker
from tests.cli.conftest import Cli, ok, run_cli


def test_topic_configs(cli: Cli, topic_name: str) -> None:
    ok(cli("topics", "create", topic_name, "--config", "retention.ms=60000"))
    overrides = ok(cli("configs", "describe", "--topic", topic_name, "--output", "json")).json()
    assert overrides["resource"] == "topic" and overrides["name"] == topic_name
    assert [(c["name"], c["value"], c["source"]) for c in overrides["configs"]] == [
        ("retention.ms", "60000", "DYNAMIC_TOPIC_CONFIG")]

    everything = ok(cli("configs", "describe", "--topic", topic_name, "--all",
                        "--output", "json")).json()["configs"]
    by_name = {c["name"]: c for c in everything}
    assert by_name["cleanup.policy"]["value"] == "delete"
    assert by_name["cleanup.policy"]["default"] is True
    assert by_name["retention.ms"]["default"] is False

    altered = ok(cli("configs", "alter", "--topic", topic_name, "--set",
                     "cleanup.policy=compact,delete", "--set", "segment.ms=3600000",
                     "--delete", "retention.ms"))
    assert altered.stdout.strip() == (f"Altered configs of topic '{topic_name}': "
                                      "cleanup.policy=compact,delete segment.ms=3600000 "
                                      "-retention.ms")
    table = ok(cli("configs", "describe", "--topic", topic_name)).stdout.splitlines()
    assert table[0].split() == ["NAME", "VALUE", "SOURCE", "READ-ONLY"]
    assert [line.split()[:2] for line in table[1:]] == [
        ["cleanup.policy", "compact,delete"], ["segment.ms", "3600000"]]

    ok(cli("configs", "alter", "--topic", topic_name, "--delete", "cleanup.policy",
           "--delete", "segment.ms"))
    empty = ok(cli("configs", "describe", "--topic", topic_name))
    assert "differ from their defaults" in empty.stdout


def test_invalid_topic_config_value(cli: Cli, topic_name: str) -> None:
    ok(cli("topics", "create", topic_name))
    result = cli("configs", "alter", "--topic", topic_name, "--set", "retention.ms=soon")
    assert result.code == 1
    assert "INVALID_CONFIG" in result.stderr


def test_broker_configs(fresh_broker: EmbeddedBroker) -> None:
    b = ["-b", fresh_broker.bootstrap]
    default_broker = ok(run_cli("configs", "describe", "--broker", *b, "--output", "json")).json()
    assert default_broker["resource"] == "broker" and default_broker["name"] == "1"
    ok(run_cli("configs", "alter", "--broker", "1", "--set", "log.retention.ms=7200000", *b))
    described = ok(run_cli("configs", "describe", "--broker", "1", "--all", *b,
                           "--output", "json")).json()["configs"]
    retention = next(c for c in described if c["name"] == "log.retention.ms")
    assert retention["value"] == "7200000"
    # strom keeps dynamic broker configs cluster-wide (DYNAMIC_DEFAULT_BROKER_CONFIG);
    # Kafka would say DYNAMIC_BROKER_CONFIG for a change to broker 1 alone.
    assert retention["source"] in ("DYNAMIC_BROKER_CONFIG", "DYNAMIC_DEFAULT_BROKER_CONFIG")


def test_config_errors(cli: Cli, topic_name: str) -> None:
    missing_entity = cli("configs", "describe")
    assert missing_entity.code == 2
    assert cli("configs", "describe", "--topic", "a", "--broker", "1").code == 2
    unknown_topic = cli("configs", "describe", "--topic", "no-such-topic")
    assert unknown_topic.code == 1
    assert unknown_topic.stderr.strip().endswith("unknown topic 'no-such-topic'")
    unknown_broker = cli("configs", "describe", "--broker", "42")
    assert unknown_broker.code == 1 and "unknown broker 42" in unknown_broker.stderr
    assert cli("configs", "describe", "--broker", "one").code == 2
    nothing = cli("configs", "alter", "--topic", topic_name)
    assert nothing.code == 2 and "nothing to alter" in nothing.stderr
    both = cli("configs", "alter", "--topic", topic_name, "--set", "a=1", "--delete", "a")
    assert both.code == 2 and "both set and deleted: a" in both.stderr
