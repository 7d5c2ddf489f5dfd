"""DescribeQuorum (API 55) against a live single node: the broker is the
metadata quorum's leader and only voter, in KRaft's shape; bad topic/partition
names get KafkaRaftClient's UNKNOWN_TOPIC_OR_PARTITION."""

from __future__ import annotations

import time

import pytest

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.testing import EmbeddedBroker
from tests.broker.admin_helpers import create
from tests.broker.raw_client import send

METADATA = "__cluster_metadata"


def _ask(broker: EmbeddedBroker, version: int, topic: str = METADATA,
         partitions: tuple[int, ...] = (0,)) -> object:
    return send(broker.bootstrap, ApiKey.DESCRIBE_QUORUM, version, {"topics": [
        {"topic_name": topic, "partitions": [{"partition_index": p} for p in partitions]}]})


@pytest.mark.parametrize("version", [0, 1, 2])
def test_single_node_is_leader_and_only_voter(broker: EmbeddedBroker, version: int) -> None:
    node_id = broker.services.node_id
    before = broker.services.image.offset
    create(broker, f"quorum-{version}-{time.monotonic_ns()}")  # one more batch
    response = _ask(broker, version)
    assert response.error_code == ErrorCode.none  # type: ignore[attr-defined]
    (topic,) = response.topics  # type: ignore[attr-defined]
    assert topic.topic_name == METADATA
    (partition,) = topic.partitions
    assert (partition.partition_index, partition.error_code) == (0, ErrorCode.none)
    assert (partition.leader_id, partition.leader_epoch) == (node_id, 1)
    assert partition.high_watermark == broker.services.image.offset > before
    (voter,) = partition.current_voters
    assert voter.replica_id == node_id
    assert voter.log_end_offset == partition.high_watermark
    assert partition.observers == ()
    if version >= 1:
        assert voter.last_caught_up_timestamp > 0
    if version >= 2:
        (node,) = response.nodes  # type: ignore[attr-defined]
        assert node.node_id == node_id
        assert [(lst.host, lst.port) for lst in node.listeners] == [(broker.host, broker.port)]


def test_advertised_in_api_versions(broker: EmbeddedBroker) -> None:
    response = send(broker.bootstrap, ApiKey.API_VERSIONS, 3,
                    {"client_software_name": "t", "client_software_version": "1"})
    ranges = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
    assert ranges[ApiKey.DESCRIBE_QUORUM] == (0, 2)


@pytest.mark.parametrize(("topic", "partitions"), [("__consumer_offsets", (0,)),
                                                   (METADATA, (1,)), (METADATA, (0, 1))])
def test_other_partitions_unknown(broker: EmbeddedBroker, topic: str,
                                  partitions: tuple[int, ...]) -> None:
    response = _ask(broker, 2, topic, partitions)
    assert response.error_code == ErrorCode.none  # type: ignore[attr-defined]
    (answered,) = response.topics  # type: ignore[attr-defined]
    assert answered.topic_name == topic
    assert [(p.partition_index, p.error_code) for p in answered.partitions] == [
        (p, ErrorCode.unknown_topic_or_partition) for p in partitions]
