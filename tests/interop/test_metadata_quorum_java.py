"""kafka-metadata-quorum (Kafka 4.4's MetadataQuorumCommand, through
Admin.describeMetadataQuorum) unchanged against a single strom node: the
broker is the quorum's leader and only voter (docs/cluster.md, The metadata
quorum)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from strom.testing import EmbeddedBroker

from .clients import run_kafka_tool

pytestmark = [pytest.mark.interop, pytest.mark.java]

QUORUM = "org.apache.kafka.tools.MetadataQuorumCommand"


def test_describe_status_and_replication(java_tools: Any, broker: EmbeddedBroker) -> None:
    node_id = broker.services.node_id
    tool = (QUORUM, "--bootstrap-server", broker.bootstrap, "describe")
    status = dict(re.findall(r"^(\w+):\s+(.*)$", run_kafka_tool(*tool, "--status").stdout,
                             re.M))
    assert status["ClusterId"] == broker.services.image.cluster_id
    assert (status["LeaderId"], status["LeaderEpoch"]) == (str(node_id), "1")
    assert int(status["HighWatermark"]) >= 1
    assert (status["MaxFollowerLag"], status["MaxFollowerLagTimeMs"]) == ("0", "0")
    assert status["CurrentVoters"].startswith(f'[{{"id": {node_id}, ')
    assert f"://{broker.host}:{broker.port}" in status["CurrentVoters"]
    assert status["CurrentObservers"] == "[]"

    rows = [line.split() for line in run_kafka_tool(*tool, "--replication").stdout.splitlines()]
    assert rows[0][:4] == ["NodeId", "DirectoryId", "LogEndOffset", "Lag"]
    (leader,) = rows[1:]
    assert (leader[0], leader[2], leader[3], leader[-1]) == (
        str(node_id), status["HighWatermark"], "0", "Leader")
