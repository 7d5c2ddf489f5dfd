"""DeleteGroups: delete empty groups and their committed offsets.

Versions: 0-2. A group with members gets NON_EMPTY_GROUP, an unknown one
GROUP_ID_NOT_FOUND; deletion writes tombstones for the offsets and the group.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import authorized_names
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation, ResourceType


@handles(ApiKey.DELETE_GROUPS)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    groups = ctx.broker.groups
    names = list(dict.fromkeys(request.groups_names))
    permitted = authorized_names(ctx, AclOperation.DELETE, ResourceType.GROUP, names)
    deleted = await groups.delete_groups([g for g in names if g in permitted])
    denied = [{"group_id": g, "error_code": ErrorCode.group_authorization_failed}
              for g in names if g not in permitted]
    return {"throttle_time": 0, "results": deleted + denied}
