"""LeaveGroup: members leave a classic group (the rest rebalance at once).

Versions: 0-5. v0-2 name one member; v3+ a batch (KIP-345), where a static
member may be removed by its instance id alone (admin tools) and each
member gets its own error.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import allowed
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation, ResourceType


@handles(ApiKey.LEAVE_GROUP)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    if not allowed(ctx, AclOperation.READ, ResourceType.GROUP, request.group_id):
        return {"throttle_time": 0, "error_code": ErrorCode.group_authorization_failed,
                "members": []}
    groups = ctx.broker.groups
    # Loaded with the group coordinator (the first ctx.broker.groups), not at
    # start with the handlers (broker/coordinators.py; issue 19).
    from strom.coordinator.group.requests import LeavingMember

    if ctx.api_version < 3:
        members = [LeavingMember(request.member_id, None)]
    else:
        members = [LeavingMember(m.member_id, m.group_instance_id, getattr(m, "reason", None))
                   for m in request.members]
    response = await groups.leave_group(request.group_id, members)
    if ctx.api_version < 3 and response["error_code"] == ErrorCode.none and response["members"]:
        response["error_code"] = response["members"][0]["error_code"]
    return {"throttle_time": 0, **response}
