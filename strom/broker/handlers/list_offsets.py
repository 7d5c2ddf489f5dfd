"""ListOffsets: offsets by timestamp, earliest, latest and max timestamp.

Versions: 1-11. Special timestamps: -1 latest (the high watermark, or the
last stable offset for read_committed), -2 earliest (log start offset),
-3 the record with the largest timestamp (KIP-734), -4 earliest local
(the same here: there is no remote tier), -5 latest tiered (none: -1).
A timestamp finds the first offset whose record timestamp is at or after
it; none gives offset -1, as in Kafka. Earliest, max timestamp and
timestamp answers carry the leader epoch of the batch found, latest the
current one, as Kafka answers them. Only the leader answers
(NOT_LEADER_OR_FOLLOWER on a follower); a follower asking (replica id >= 0,
after OFFSET_OUT_OF_RANGE) gets the log end offset as the latest offset.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import authorized_names
from strom.broker.context import RequestContext
from strom.broker.partition import Partition
from strom.broker.router import handles
from strom.errors import ErrorCode, KafkaError, NotLeaderOrFollowerError
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation, ResourceType

LATEST, EARLIEST, MAX_TIMESTAMP, EARLIEST_LOCAL, LATEST_TIERED = -1, -2, -3, -4, -5
READ_COMMITTED = 1


@handles(ApiKey.LIST_OFFSETS)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    read_committed = getattr(request, "isolation_level", 0) == READ_COMMITTED
    from_replica = getattr(request, "replica_id", -1) >= 0
    topics = []
    describable = authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC,
                                   (t.name for t in request.topics))
    for topic in request.topics:
        partitions = []
        seen: set[int] = set()
        if topic.name not in describable:
            topics.append({"name": topic.name, "partitions": [
                {"partition_index": p.partition_index,
                 "error_code": ErrorCode.topic_authorization_failed, "timestamp": -1,
                 "offset": -1, "leader_epoch": -1} for p in topic.partitions]})
            continue
        for wanted in topic.partitions:
            index = wanted.partition_index
            response: dict[str, Any] = {"partition_index": index, "error_code": ErrorCode.none,
                                        "timestamp": -1, "offset": -1, "leader_epoch": -1}
            if index in seen:
                response["error_code"] = ErrorCode.invalid_request
                partitions.append(response)
                continue
            seen.add(index)
            try:
                partition = ctx.broker.replicas.get(topic.name, index)
                partition.check_leader_epoch(getattr(wanted, "current_leader_epoch", -1))
                if not partition.is_leader:
                    raise NotLeaderOrFollowerError(
                        f"not the leader of {topic.name}-{index}")
                if from_replica:
                    upper = partition.log_end_offset
                else:
                    upper = (partition.last_stable_offset if read_committed
                             else partition.high_watermark)
                timestamp = wanted.timestamp
                log = partition.log
                if timestamp == LATEST:
                    response.update(offset=upper, leader_epoch=partition.leader_epoch)
                elif timestamp in (EARLIEST, EARLIEST_LOCAL):
                    # Kafka answers the epoch of the batch at the log start
                    # (its leader epoch cache's), -1 when the cache has none.
                    # Without tiered storage the local log start is the log start.
                    start = log.log_start_offset
                    response.update(offset=start, leader_epoch=_epoch_at(partition, start))
                elif timestamp == MAX_TIMESTAMP:
                    max_ts, offset = log.max_timestamp()
                    if 0 <= offset < upper:
                        response.update(timestamp=max_ts, offset=offset,
                                        leader_epoch=_epoch_at(partition, offset))
                elif timestamp >= 0:
                    found = log.offset_for_timestamp(timestamp)
                    if found is not None and found[0] < upper:
                        response.update(offset=found[0], timestamp=found[1],
                                        leader_epoch=_epoch_at(partition, found[0]))
            except KafkaError as exc:
                response["error_code"] = exc.code
            partitions.append(response)
        topics.append({"name": topic.name, "partitions": partitions})
    return {"throttle_time": 0, "topics": topics}


def _epoch_at(partition: Partition, offset: int) -> int:
    """The leader epoch of the batch holding `offset` (the leader epoch
    cache's), as Kafka answers earliest, max-timestamp and timestamp lookups
    (the batch's partitionLeaderEpoch); -1 when unknown."""
    epoch = partition.log.leader_epoch_cache.epoch_for_offset(offset)
    return -1 if epoch is None else epoch
