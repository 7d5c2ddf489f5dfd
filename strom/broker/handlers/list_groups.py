"""ListGroups: every group this broker coordinates.

Versions: 0-5; v4 filters by state (KIP-518), v5 by type (classic or
consumer, KIP-848), both case-insensitively.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import allowed, cluster_allowed
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation, ResourceType


@handles(ApiKey.LIST_GROUPS)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    groups = ctx.broker.groups
    code, listed = await groups.list_groups(getattr(request, "states_filter", ()),
                                            getattr(request, "types_filter", ()))
    if not cluster_allowed(ctx, AclOperation.DESCRIBE):
        # Without DESCRIBE on the cluster a principal sees the groups it may describe.
        listed = [g for g in listed
                  if allowed(ctx, AclOperation.DESCRIBE, ResourceType.GROUP, g["group_id"])]
    return {"throttle_time": 0, "error_code": code, "groups": listed}
