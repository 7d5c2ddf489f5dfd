"""DescribeGroups: state, protocol and members of classic groups.

Versions: 0-6. Member metadata is reported only while the group is Stable,
as Kafka does. A group that does not exist (or is a KIP-848 consumer group)
is "Dead" with no error before v6, GROUP_ID_NOT_FOUND with a message from
v6 (KIP-1043).
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import (
    AUTHORIZED_OPERATIONS_OMITTED,
    authorized_names,
    operations_if,
)
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation, ResourceType


@handles(ApiKey.DESCRIBE_GROUPS)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    groups = ctx.broker.groups
    include = bool(getattr(request, "include_authorized_operations", False))
    wanted = list(request.groups)
    permitted = authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.GROUP, wanted)
    described: list[dict[str, Any]] = [
        {"error_code": ErrorCode.group_authorization_failed, "error_message": None,
         "group_id": g, "group_state": "", "protocol_type": "", "protocol_data": "",
         "members": [], "authorized_operations": AUTHORIZED_OPERATIONS_OMITTED}
        for g in wanted if g not in permitted]
    answers = await groups.describe_groups([g for g in wanted if g in permitted], include)
    for group_id, code, message, group in answers:
        if group is not None:
            # KIP-430: what this principal may do on the group.
            group["authorized_operations"] = operations_if(
                ctx, include and ctx.api_version >= 3, ResourceType.GROUP, group_id)
            described.append(group)
            continue
        if code == ErrorCode.group_id_not_found and ctx.api_version < 6:
            code, message = ErrorCode.none, None
        described.append({
            "error_code": code, "error_message": message, "group_id": group_id,
            "group_state": "Dead", "protocol_type": "", "protocol_data": "", "members": [],
            "authorized_operations": AUTHORIZED_OPERATIONS_OMITTED})
    return {"throttle_time": 0, "groups": described}
