"""OffsetForLeaderEpoch: the end offset of a leader epoch, for truncation checks.

Versions: 2-4. For each partition: the largest epoch at or below the
requested one and the start offset of the next epoch (or the log end offset
for the latest epoch); leader_epoch and end_offset are -1 when the log knows
no such epoch. current_leader_epoch fences stale callers (FENCED_LEADER_EPOCH
/ UNKNOWN_LEADER_EPOCH; -1 skips the check). Only the leader answers, as in
Kafka, whether the caller is a consumer (replica_id -1, v3+) or a follower.
Partitions this broker does not host: NOT_LEADER_OR_FOLLOWER if the topic
exists, else UNKNOWN_TOPIC_OR_PARTITION.
"""

from __future__ import annotations

from typing import Any

from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.errors import ErrorCode, KafkaError
from strom.protocol.api import ApiKey


def _end_offset(ctx: RequestContext, topic: str, wanted: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"error_code": ErrorCode.none, "partition": wanted.partition,
                              "leader_epoch": -1, "end_offset": -1}
    broker = ctx.broker
    partition = broker.replicas.partitions.get((topic, wanted.partition))
    if partition is None:
        info = broker.image.topics.get(topic)
        hosted_elsewhere = info is not None and any(
            p.partition == wanted.partition for p in info.partitions)
        result["error_code"] = (ErrorCode.not_leader_or_follower if hosted_elsewhere
                                else ErrorCode.unknown_topic_or_partition)
        return result
    try:
        epoch, end_offset = partition.end_offset_for_epoch(wanted.leader_epoch,
                                                           wanted.current_leader_epoch)
    except KafkaError as exc:
        result["error_code"] = exc.code
        return result
    result.update(leader_epoch=epoch, end_offset=end_offset)
    return result


@handles(ApiKey.OFFSET_FOR_LEADER_EPOCH)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    return {
        "throttle_time": 0,
        "topics": [
            {"topic": topic.topic,
             "partitions": [_end_offset(ctx, topic.topic, p) for p in topic.partitions]}
            for topic in request.topics
        ],
    }
