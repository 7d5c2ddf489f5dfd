"""OffsetDelete: delete some committed offsets of a group (KIP-496).

Versions: 0. The group must exist (GROUP_ID_NOT_FOUND); a classic group
with members must use the consumer protocol (else NON_EMPTY_GROUP), and a
topic its members subscribe to gets GROUP_SUBSCRIBED_TO_TOPIC.
"""

from __future__ import annotations

from typing import Any

from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.protocol.api import ApiKey


@handles(ApiKey.OFFSET_DELETE)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    groups = ctx.broker.groups
    topics = [(t.name, [p.partition_index for p in t.partitions]) for t in request.topics]
    code, answered = await groups.delete_offsets(request.group_id, topics)
    return {"throttle_time": 0, "error_code": code, "topics": answered}
