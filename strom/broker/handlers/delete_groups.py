"""DeleteGroups: delete empty groups and their committed offsets.

Versions: 0-2. A group with members gets NON_EMPTY_GROUP, an unknown one
GROUP_ID_NOT_FOUND; deletion writes tombstones for the offsets and the group.
"""

from __future__ import annotations

from typing import Any

from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.protocol.api import ApiKey


@handles(ApiKey.DELETE_GROUPS)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    groups = ctx.broker.groups
    return {"throttle_time": 0, "results": await groups.delete_groups(list(request.groups_names))}
