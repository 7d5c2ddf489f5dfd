"""DeleteRecords: move partitions' log start offsets forward.

Versions: 0-2. Offset -1 means the high watermark. Records below the new
log start offset become unreadable and segments wholly below it are deleted.
An offset below the current log start changes nothing; one above the high
watermark, or negative, fails with OFFSET_OUT_OF_RANGE. Each partition
reports its low watermark (the log start offset afterwards; -1 on error).
A compact-only topic fails with POLICY_VIOLATION and internal topics with
INVALID_TOPIC_EXCEPTION, as in Kafka. With a single replica the deletion is
complete when the leader's log start moves, so nothing waits.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import authorized_names
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.cluster.image import INTERNAL_TOPICS
from strom.errors import ErrorCode, InvalidTopicError, KafkaError, error_code_for
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation, ResourceType


def _delete(ctx: RequestContext, topic: str, index: int, offset: int) -> int:
    """The new low watermark; raises KafkaErrors."""
    if topic in INTERNAL_TOPICS:
        raise InvalidTopicError(f"Cannot delete records of internal topic {topic}")
    # Offset -1 is partition_config.DELETE_TO_HIGH_WATERMARK.
    return ctx.broker.replicas.get(topic, index).delete_records(offset)


@handles(ApiKey.DELETE_RECORDS)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    topics = []
    deletable = authorized_names(ctx, AclOperation.DELETE, ResourceType.TOPIC,
                                 (t.name for t in request.topics))
    for topic in request.topics:
        partitions = []
        for wanted in topic.partitions:
            result: dict[str, Any] = {"partition_index": wanted.partition_index,
                                      "low_watermark": -1, "error_code": ErrorCode.none}
            if topic.name not in deletable:
                result["error_code"] = ErrorCode.topic_authorization_failed
                partitions.append(result)
                continue
            try:
                result["low_watermark"] = _delete(ctx, topic.name, wanted.partition_index,
                                                  wanted.offset)
            except KafkaError as exc:
                result["error_code"] = error_code_for(exc)
            partitions.append(result)
        topics.append({"name": topic.name, "partitions": partitions})
    return {"throttle_time": 0, "topics": topics}
