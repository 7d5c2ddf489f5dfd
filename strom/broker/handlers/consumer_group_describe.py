"""ConsumerGroupDescribe: KIP-848 consumer groups, their members and assignments.

Versions: 0-1. A classic group gets GROUP_ID_NOT_FOUND ("not a consumer
group"), which is how Kafka's admin client knows to ask DescribeGroups. A
consumer group's classic members (KIP-848 migration) have member type 0 (v1).
"""

from __future__ import annotations

from typing import Any

from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.protocol.api import ApiKey


@handles(ApiKey.CONSUMER_GROUP_DESCRIBE)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    groups = ctx.broker.groups
    described = await groups.consumer_group_describe(
        list(request.group_ids), bool(request.include_authorized_operations))
    return {"throttle_time": 0, "groups": described}
