"""DescribeQuorum in cluster mode: asked of any broker (forwarded to the
controller, as Kafka's brokers forward it), it names the controller as leader
and every registered broker as a voter; the epoch grows when another broker
takes over (docs/cluster.md, The metadata quorum)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from tests.broker.raw_client import RawClient
from tests.cluster.brokers import WAIT, controller_and_other, registered_brokers
from tests.cluster.etcd_process import EtcdCluster
from tests.interop.clients import KAFKA_LIBS, run_kafka_tool, wait_until


def _quorum(bootstrap: str) -> Any:
    with RawClient(bootstrap, timeout=WAIT) as client:
        response = client.send(ApiKey.DESCRIBE_QUORUM, 2, {"topics": [
            {"topic_name": "__cluster_metadata", "partitions": [{"partition_index": 0}]}]})
    assert response.error_code == ErrorCode.none
    return response.topics[0].partitions[0]


def test_controller_leads_registered_brokers_vote(tmp_path: Path, etcd: EtcdCluster) -> None:
    with registered_brokers(tmp_path, etcd) as started:
        controller, other = controller_and_other(started)
        controller_id = int(controller.overrides["node.id"])
        admin = AdminClient({"bootstrap.servers": other.bootstrap})
        admin.create_topics([NewTopic("quorum", 1, 2)])["quorum"].result(WAIT)
        first = _quorum(other.bootstrap)  # forwarded to the controller
        assert first.error_code == ErrorCode.none
        assert first.leader_id == controller_id
        assert first.leader_epoch > 0
        assert first.high_watermark >= 1
        voters = {v.replica_id: v.log_end_offset for v in first.current_voters}
        assert voters == {controller_id: first.high_watermark,
                          int(other.overrides["node.id"]): -1}
        if shutil.which("java") and list(KAFKA_LIBS.glob("kafka-tools-*.jar")):
            # Kafka 4.4's tool reads it unchanged; the unknown follower offset
            # shows as a lag of the high watermark + 1 (docs/cluster.md).
            out = run_kafka_tool("org.apache.kafka.tools.MetadataQuorumCommand",
                                 "--bootstrap-server", other.bootstrap, "describe",
                                 "--status").stdout
            status = dict(re.findall(r"^(\w+):\s+(.*)$", out, re.M))
            assert status["LeaderId"] == str(controller_id)
            lag = int(status["MaxFollowerLag"])
            assert lag == int(status["HighWatermark"]) + 1
            assert status["MaxFollowerLagTimeMs"] == "-1"

        controller.stop()  # controlled shutdown: its candidacy goes with its lease
        wait_until(lambda: _quorum(other.bootstrap).leader_id == int(other.overrides["node.id"]),
                   WAIT, what="the other broker leads the quorum")
        after = _quorum(other.bootstrap)
        assert after.leader_epoch > first.leader_epoch
        assert after.high_watermark >= first.high_watermark
        assert [v.replica_id for v in after.current_voters] == [int(other.overrides["node.id"])]
