"""Heartbeat: a classic group member is alive; learns of rebalances.

Versions: 0-4; v3 adds group.instance.id. REBALANCE_IN_PROGRESS tells the
member to rejoin; ILLEGAL_GENERATION and UNKNOWN_MEMBER_ID that it was
left behind or removed.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import allowed
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation, ResourceType


@handles(ApiKey.HEARTBEAT)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    if not allowed(ctx, AclOperation.READ, ResourceType.GROUP, request.group_id):
        return {"throttle_time": 0, "error_code": ErrorCode.group_authorization_failed}
    groups = ctx.broker.groups
    code = await groups.heartbeat(request.group_id, request.member_id,
                                  getattr(request, "group_instance_id", None),
                                  request.generation_id)
    return {"throttle_time": 0, "error_code": code}
