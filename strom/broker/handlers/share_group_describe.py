"""ShareGroupDescribe: share groups, their members and assignments (KIP-932).

Versions: 1 (Kafka 4.4's only version). A group of another type gets
GROUP_ID_NOT_FOUND "Group X is not a share group."; an unknown one
"Share group X not found."; DESCRIBE on the group is required (and, as for
ConsumerGroupDescribe in Kafka 4.x, on every topic of its assignments).
"""

from __future__ import annotations

from typing import Any

from strom.broker.context import RequestContext
from strom.broker.group_authorization import describe_modern_groups, not_described
from strom.broker.router import handles
from strom.protocol.api import ApiKey


@handles(ApiKey.SHARE_GROUP_DESCRIBE)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    return await describe_modern_groups(
        ctx, request, ctx.broker.groups.share.describe, _topics, not_described,
        "The group has described topic(s) that the client is not authorized to describe.")


def _topics(group: dict[str, Any]) -> set[str]:
    return {tp["topic_name"] for member in group["members"]
            for tp in member["assignment"]["topic_partitions"]}
