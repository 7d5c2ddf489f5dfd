"""OffsetForLeaderEpoch: the end offset of a leader epoch, for truncation checks.

Versions: 2-4. For each partition: the largest epoch at or below the
requested one and the start offset of the next epoch (or the log end offset
for the latest epoch); leader_epoch and end_offset are -1 when the log knows
no such epoch. current_leader_epoch fences stale callers (FENCED_LEADER_EPOCH
/ UNKNOWN_LEADER_EPOCH; -1 skips the check). Only the leader answers, as in
Kafka, whether the caller is a consumer (replica_id -1, v3+) or a follower:
a follower or a broker that does not host the partition answers
NOT_LEADER_OR_FOLLOWER (UNKNOWN_TOPIC_OR_PARTITION only for a partition the
cluster does not have), through the replica manager as every handler.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import authorized_names, cluster_allowed
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.errors import ErrorCode, KafkaError
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation, ResourceType


def _end_offset(ctx: RequestContext, topic: str, wanted: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"error_code": ErrorCode.none, "partition": wanted.partition,
                              "leader_epoch": -1, "end_offset": -1}
    try:
        partition = ctx.broker.replicas.get(topic, wanted.partition)
        epoch, end_offset = partition.end_offset_for_epoch(wanted.leader_epoch,
                                                           wanted.current_leader_epoch)
    except KafkaError as exc:
        result["error_code"] = exc.code
        return result
    result.update(leader_epoch=epoch, end_offset=end_offset)
    return result


@handles(ApiKey.OFFSET_FOR_LEADER_EPOCH)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    names = [topic.topic for topic in request.topics]
    # A broker (CLUSTER_ACTION) may ask for any topic, a client for those it may describe.
    describable = (set(names) if cluster_allowed(ctx, AclOperation.CLUSTER_ACTION)
                   else authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, names))
    return {
        "throttle_time": 0,
        "topics": [
            {"topic": topic.topic,
             "partitions": [_end_offset(ctx, topic.topic, p) if topic.topic in describable
                            else {"error_code": ErrorCode.topic_authorization_failed,
                                  "partition": p.partition, "leader_epoch": -1,
                                  "end_offset": -1}
                            for p in topic.partitions]}
            for topic in request.topics
        ],
    }
