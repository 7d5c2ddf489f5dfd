"""ConsumerGroupDescribe: KIP-848 consumer groups, their members and assignments.

Versions: 0-1. A classic group gets GROUP_ID_NOT_FOUND ("not a consumer
group"), which is how Kafka's admin client knows to ask DescribeGroups. A
consumer group's classic members (KIP-848 migration) have member type 0 (v1).
"""

from __future__ import annotations

from typing import Any

from strom.broker.context import RequestContext
from strom.broker.group_authorization import describe_modern_groups, not_described
from strom.broker.router import handles
from strom.protocol.api import ApiKey


@handles(ApiKey.CONSUMER_GROUP_DESCRIBE)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    include = bool(request.include_authorized_operations)

    async def describe(group_ids: list[str]) -> list[dict[str, Any]]:
        return await ctx.broker.groups.consumer_group_describe(group_ids, include)

    return await describe_modern_groups(
        ctx, request, describe, _topics, not_described,
        "The group has described topic(s) that the client is not authorized to describe.")


def _topics(group: dict[str, Any]) -> set[str]:
    return {tp["topic_name"] for member in group["members"]
            for key in ("assignment", "target_assignment")
            for tp in member[key]["topic_partitions"]}
