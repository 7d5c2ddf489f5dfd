"""kafka-features.sh (Kafka 4.4's FeatureCommand) unchanged against strom:
describe shows metadata.version by Kafka's release names, upgrade raises it,
a level past strom's is refused with Kafka's message (docs/cluster.md,
Upgrading)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from strom.testing import EmbeddedBroker
from tests.cluster.test_metadata_version import _write_old_metadata

from .clients import run_kafka_tool

pytestmark = [pytest.mark.interop, pytest.mark.java]

FEATURES = "org.apache.kafka.tools.FeatureCommand"


def test_kafka_features_describe_and_upgrade(java_tools: Any, tmp_path: Path) -> None:
    _write_old_metadata(tmp_path / "data")  # metadata of a strom before metadata.version
    with EmbeddedBroker(tmp_path / "data") as broker:
        tool = (FEATURES, "--bootstrap-server", broker.bootstrap)
        described = run_kafka_tool(*tool, "describe").stdout
        line = next(x for x in described.splitlines() if "metadata.version" in x)
        assert line.split() == ["Feature:", "metadata.version", "SupportedMinVersion:",
                                "3.3-IV3", "SupportedMaxVersion:", "3.6-IV0",
                                "FinalizedVersionLevel:", "3.3-IV3", "Epoch:", "1"]
        refused = run_kafka_tool(*tool, "upgrade", "--feature", "metadata.version=13",
                                 check=False)
        assert refused.returncode == 1
        assert "Local controller 1 only supports versions [7-12]" in refused.stdout
        upgraded = run_kafka_tool(*tool, "upgrade", "--release-version", "3.5").stdout
        assert "metadata.version was upgraded to 11." in upgraded
        described = run_kafka_tool(*tool, "describe").stdout
        assert "FinalizedVersionLevel: 3.5-IV2" in " ".join(described.split())
