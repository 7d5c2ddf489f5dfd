"""OffsetDelete: delete some committed offsets of a group (KIP-496).

Versions: 0. The group must exist (GROUP_ID_NOT_FOUND); a classic group
with members must use the consumer protocol (else NON_EMPTY_GROUP), and a
topic its members subscribe to gets GROUP_SUBSCRIBED_TO_TOPIC.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import allowed, authorized_names
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation, ResourceType


@handles(ApiKey.OFFSET_DELETE)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    if not allowed(ctx, AclOperation.DELETE, ResourceType.GROUP, request.group_id):
        return {"throttle_time": 0, "error_code": ErrorCode.group_authorization_failed,
                "topics": []}
    groups = ctx.broker.groups
    readable = authorized_names(ctx, AclOperation.READ, ResourceType.TOPIC,
                                (t.name for t in request.topics))
    topics = [(t.name, [p.partition_index for p in t.partitions]) for t in request.topics
              if t.name in readable]
    code, answered = await groups.delete_offsets(request.group_id, topics)
    if code == ErrorCode.none:
        answered += [{"name": t.name, "partitions": [
            {"partition_index": p.partition_index,
             "error_code": ErrorCode.topic_authorization_failed} for p in t.partitions]}
            for t in request.topics if t.name not in readable]
    return {"throttle_time": 0, "error_code": code, "topics": answered}
