"""kafka-configs.sh --entity-type groups (Kafka 4.4's ConfigCommand) against
strom: per-group configs set, described and refused with Kafka's message."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from strom.testing import EmbeddedBroker

from .clients import run_kafka_tool

pytestmark = [pytest.mark.interop, pytest.mark.java]


def test_kafka_configs_groups(java_tools: Any, broker: EmbeddedBroker) -> None:
    group = f"jgc-{uuid.uuid4()}"
    tool = ("configs", "--bootstrap-server", broker.bootstrap, "--entity-type", "groups",
            "--entity-name", group)
    done = run_kafka_tool(*tool, "--alter", "--add-config", "consumer.session.timeout.ms=50000")
    assert f"Completed updating config for group {group}." in done.stdout
    described = run_kafka_tool(*tool, "--describe").stdout
    assert "consumer.session.timeout.ms=50000" in described
    refused = run_kafka_tool(*tool, "--alter", "--add-config",
                             "consumer.heartbeat.interval.ms=1", check=False)
    assert refused.returncode != 0
    assert ("consumer.heartbeat.interval.ms must be in the range 5000 to 15000 inclusive."
            in refused.stdout + refused.stderr)
