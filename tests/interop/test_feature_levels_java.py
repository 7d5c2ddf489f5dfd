"""kafka-features.sh describe (Kafka 4.4's FeatureCommand) against strom lists
Kafka 4.4's features at the levels strom implements (cluster/features.py)."""

from __future__ import annotations

from typing import Any

import pytest

from strom.testing import EmbeddedBroker

from .clients import run_kafka_tool

pytestmark = [pytest.mark.interop, pytest.mark.java]

FEATURES = "org.apache.kafka.tools.FeatureCommand"


def test_kafka_features_describe_lists_every_feature(java_tools: Any,
                                                     broker: EmbeddedBroker) -> None:
    tool = (FEATURES, "--bootstrap-server", broker.bootstrap)
    out = run_kafka_tool(*tool, "describe").stdout
    rows = {(fields := line.split())[1]: fields[3:8:2] for line in out.splitlines()
            if line.startswith("Feature:")}
    assert rows == {
        "eligible.leader.replicas.version": ["0", "0", "0"],
        "group.version": ["0", "1", "1"],
        "kraft.version": ["0", "0", "0"],
        "metadata.version": ["3.3-IV3", "3.6-IV0", "3.6-IV0"],
        "share.version": ["0", "1", "1"],
        "streams.version": ["0", "1", "1"],
        "transaction.version": ["0", "2", "2"],
    }
    refused = run_kafka_tool(*tool, "upgrade", "--feature", "share.version=2", check=False)
    assert refused.returncode == 1
    assert "Local controller 1 only supports versions [0-1]" in refused.stdout + refused.stderr
