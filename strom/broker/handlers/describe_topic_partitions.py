"""DescribeTopicPartitions (KIP-966): topics and partitions, paginated.

Versions: 0. Topics are described in name order (an empty list: every
topic) starting at the cursor, until response_partition_limit partitions
(capped at Kafka's max.request.partition.size.limit, 2000, and at least 1)
have been sent; next_cursor then names the first topic and partition left
out. A topic is cut only when the limit falls inside it. The cursor's topic
must be among the requested ones and its partition not negative, else every
requested topic fails with INVALID_REQUEST, as in Kafka. Unknown topics
(only when named) get UNKNOWN_TOPIC_OR_PARTITION, illegal names
INVALID_TOPIC_EXCEPTION. Eligible leader replicas (KIP-966) are not in use:
eligible_leader_replicas and last_known_elr are empty.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from strom.broker.authorization import (
    AUTHORIZED_OPERATIONS_OMITTED,
    authorized_names,
    authorized_operations,
)
from strom.broker.context import RequestContext
from strom.broker.handlers.metadata import describe_partition
from strom.broker.router import handles
from strom.cluster.image import INTERNAL_TOPICS, TopicInfo
from strom.cluster.validation import validate_topic_name
from strom.errors import ErrorCode, InvalidTopicError
from strom.protocol.api import ApiKey
from strom.protocol.messages import ZERO_UUID
from strom.security.acl_types import AclOperation, ResourceType

MAX_REQUEST_PARTITION_SIZE_LIMIT = 2000


def _topic(name: str, code: ErrorCode, topic: TopicInfo | None = None,
           partitions: list[dict[str, Any]] | None = None,
           operations: int = AUTHORIZED_OPERATIONS_OMITTED) -> dict[str, Any]:
    return {"error_code": code, "name": name,
            "topic_id": topic.topic_id if topic else ZERO_UUID,
            "is_internal": name in INTERNAL_TOPICS, "partitions": partitions or [],
            "topic_authorized_operations": operations}


def _partitions(topic: TopicInfo, start: int, limit: int, offline: Container[tuple[str, int]],
                registered: Container[int]) -> list[dict[str, Any]]:
    # Eligible leader replicas (KIP-966) are not in use.
    return [
        {**describe_partition(topic.name, p, offline, registered),
         "eligible_leader_replicas": [], "last_known_elr": []}
        for p in topic.partitions[start:start + limit]
    ]


@handles(ApiKey.DESCRIBE_TOPIC_PARTITIONS)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    image = ctx.broker.image
    cursor = request.cursor
    cursor_topic = cursor.topic_name if cursor is not None else ""
    all_topics = not request.topics
    candidates = image.topics if all_topics else (t.name for t in request.topics)
    names = sorted({n for n in candidates if n >= cursor_topic})
    # Kafka: topics the principal may not describe are left out of an
    # all-topics answer and answered TOPIC_AUTHORIZATION_FAILED when named.
    describable = authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, names)
    if all_topics:
        names = [n for n in names if n in describable]
    if cursor is not None and (
            (not all_topics and cursor.topic_name not in names) or cursor.partition_index < 0):
        return {"throttle_time": 0, "next_cursor": None, "topics": [
            {"error_code": ErrorCode.invalid_request, "name": t.name, "topic_id": ZERO_UUID,
             "is_internal": False, "partitions": [],
             "topic_authorized_operations": -(2**31)} for t in request.topics]}

    remaining = max(min(MAX_REQUEST_PARTITION_SIZE_LIMIT, request.response_partition_limit), 1)
    topics: list[dict[str, Any]] = []
    next_cursor: dict[str, Any] | None = None
    for name in names:
        if remaining == 0:
            next_cursor = {"topic_name": name, "partition_index": 0}
            break
        if name not in describable:
            topics.append({**_topic(name, ErrorCode.topic_authorization_failed),
                           "is_internal": False})
            continue
        topic = image.topics.get(name)
        if topic is None:
            if not all_topics:
                try:
                    validate_topic_name(name)
                    code = ErrorCode.unknown_topic_or_partition
                except InvalidTopicError:
                    code = ErrorCode.invalid_topic_exception
                topics.append(_topic(name, code))
            continue
        start = cursor.partition_index if cursor is not None and name == cursor_topic else 0
        partitions = _partitions(topic, start, remaining, ctx.broker.replicas.offline,
                                 image.brokers)
        topics.append(_topic(name, ErrorCode.none, topic, partitions,
                             authorized_operations(ctx, ResourceType.TOPIC, name)))
        end = start + len(partitions)
        if end < len(topic.partitions):
            next_cursor = {"topic_name": name, "partition_index": end}
            break
        remaining -= len(partitions)
    return {"throttle_time": 0, "topics": topics, "next_cursor": next_cursor}
