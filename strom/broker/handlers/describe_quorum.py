"""DescribeQuorum: the metadata quorum, in KRaft's shape
(`kafka-metadata-quorum describe`, Admin.describeMetadataQuorum).

Versions: 0-2 (v1 last fetch / caught-up timestamps, v2 directory ids and
the voters' listeners). As Kafka's brokers do, a broker that is not the
controller forwards it (broker/forwarding.py); the controller answers for the
`__cluster_metadata` partition from its metadata image (docs/cluster.md
"The metadata quorum"):

- leader: the controller (a single node is its own); leader_epoch: the
  controller's epoch (1 on a single node; in cluster mode the etcd revision
  its candidacy won with, higher for each later controller);
- high_watermark: the metadata offset (batches applied: in cluster mode the
  sequence number of the last batch, the same on every broker that applied it);
- voters: the registered brokers, every one a controller candidate (as a
  KRaft voter may become leader); no observers. The real vote is etcd's,
  whose members are not Kafka nodes and cannot be named here. Only the
  leader's log end offset is known: the other brokers read the batches from
  etcd, not from the controller, so theirs are -1 (Kafka's "unknown"), and
  `kafka-metadata-quorum describe --status` shows a MaxFollowerLag of the
  high watermark + 1 in a cluster.

Bad input is answered as KafkaRaftClient does: a topic/partition other than
`__cluster_metadata`-0 gets UNKNOWN_TOPIC_OR_PARTITION for each partition
asked; not (or no longer) the controller, NOT_LEADER_OR_FOLLOWER
(retriable: the client asks again); without DESCRIBE on the
cluster, CLUSTER_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import cluster_allowed
from strom.broker.context import RequestContext
from strom.broker.forwarding import forwarded_to_controller
from strom.broker.router import handles
from strom.cluster.image import BrokerInfo, MetadataImage
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.protocol.messages import ZERO_UUID
from strom.security.acl_types import AclOperation

CLUSTER_METADATA_TOPIC = "__cluster_metadata"
UNKNOWN = -1


@handles(ApiKey.DESCRIBE_QUORUM)
@forwarded_to_controller
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    if not cluster_allowed(ctx, AclOperation.DESCRIBE):
        return _error(ErrorCode.cluster_authorization_failed)
    asked = [(t.topic_name, p.partition_index) for t in request.topics for p in t.partitions]
    if asked != [(CLUSTER_METADATA_TOPIC, 0)]:
        return {**_error(ErrorCode.none), "topics": [
            {"topic_name": t.topic_name, "partitions": [
                {**_partition(p.partition_index),
                 "error_code": ErrorCode.unknown_topic_or_partition,
                 "error_message": "This server does not host this topic-partition."}
                for p in t.partitions]}
            for t in request.topics]}
    image = ctx.broker.image
    if image.controller_id != ctx.broker.metadata.node_id:
        partition = {**_partition(0), "error_code": ErrorCode.not_leader_or_follower,
                     "error_message": "For requests intended only for the leader, this error "
                                      "indicates that the broker is not the current leader."}
    else:
        partition = {**_partition(0), "leader_id": image.controller_id,
                     "leader_epoch": image.controller_epoch,
                     "high_watermark": image.offset,
                     "current_voters": [_voter(ctx.broker.clock.wall_ms(), image, b)
                                        for b in sorted(image.brokers.values(),
                                                        key=lambda b: b.node_id)]}
    return {**_error(ErrorCode.none),
            "topics": [{"topic_name": CLUSTER_METADATA_TOPIC, "partitions": [partition]}],
            # v2: each voter's listeners (Kafka names its controller listeners;
            # a strom controller is a broker, reached on its broker listeners).
            "nodes": [] if "current_voters" not in partition else [
                {"node_id": b.node_id, "listeners": [
                    {"name": name, "host": host, "port": port}
                    for name, host, port in _listeners(ctx, b)]}
                for b in sorted(image.brokers.values(), key=lambda b: b.node_id)]}


def _voter(now: int, image: MetadataImage, broker: BrokerInfo) -> dict[str, Any]:
    leader = broker.node_id == image.controller_id
    # Kafka reports the leader's timestamps as now; followers' fetches from
    # the controller do not exist here (brokers read etcd).
    return {"replica_id": broker.node_id, "replica_directory_id": ZERO_UUID,
            "log_end_offset": image.offset if leader else UNKNOWN,
            "last_fetch_timestamp": now if leader else UNKNOWN,
            "last_caught_up_timestamp": now if leader else UNKNOWN}


def _listeners(ctx: RequestContext, broker: BrokerInfo) -> list[tuple[str, str, int]]:
    if broker.endpoints:
        return [(e.listener, e.host, e.port) for e in broker.endpoints]
    return [(ctx.listener_name, broker.host, broker.port)]


def _partition(index: int) -> dict[str, Any]:
    return {"partition_index": index, "error_code": ErrorCode.none, "error_message": None,
            "leader_id": UNKNOWN, "leader_epoch": UNKNOWN, "high_watermark": UNKNOWN,
            "current_voters": [], "observers": []}


def _error(code: ErrorCode) -> dict[str, Any]:
    return {"error_code": code, "error_message": None, "topics": [], "nodes": []}
