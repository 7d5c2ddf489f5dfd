"""SyncGroup: the leader hands in the assignment; every member gets its own.

Versions: 0-5; v3 adds group.instance.id, v5 the protocol type and name
(checked against the group's: INCONSISTENT_GROUP_PROTOCOL). Members other
than the leader wait until the leader's assignment is durable.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import allowed
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation, ResourceType


@handles(ApiKey.SYNC_GROUP)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    if not allowed(ctx, AclOperation.READ, ResourceType.GROUP, request.group_id):
        return {"throttle_time": 0, "error_code": ErrorCode.group_authorization_failed,
                "protocol_type": None, "protocol_name": None, "assignment": b""}
    groups = ctx.broker.groups
    # Loaded with the group coordinator (the first ctx.broker.groups), not at
    # start with the handlers (broker/coordinators.py; issue 19).
    from strom.coordinator.group.requests import SyncRequest

    return await groups.sync_group(SyncRequest(
        group_id=request.group_id,
        generation_id=request.generation_id,
        member_id=request.member_id,
        group_instance_id=getattr(request, "group_instance_id", None),
        protocol_type=getattr(request, "protocol_type", None),
        protocol_name=getattr(request, "protocol_name", None),
        assignments=tuple((a.member_id, bytes(a.assignment)) for a in request.assignments),
    ))
