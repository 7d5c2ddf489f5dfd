"""ShareGroupDescribe: share groups, their members and assignments (KIP-932).

Versions: 1 (Kafka 4.4's only version). A group of another type gets
GROUP_ID_NOT_FOUND "Group X is not a share group."; an unknown one
"Share group X not found."; DESCRIBE on the group is required (and, as for
ConsumerGroupDescribe in Kafka 4.x, on every topic of its assignments).
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import authorized_names, operations_if
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation, ResourceType


@handles(ApiKey.SHARE_GROUP_DESCRIBE)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    include = bool(request.include_authorized_operations)
    wanted = list(request.group_ids)
    permitted = authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.GROUP, wanted)
    described = await ctx.broker.groups.share.describe([g for g in wanted if g in permitted])
    for i, group in enumerate(described):
        if group["error_code"] != ErrorCode.none:
            continue
        if not _topics_describable(ctx, group):
            described[i] = _failed(group["group_id"], ErrorCode.topic_authorization_failed,
                                   "The group has described topic(s) that the client is not "
                                   "authorized to describe.")
            continue
        group["authorized_operations"] = operations_if(ctx, include, ResourceType.GROUP,
                                                       group["group_id"])
    denied = [_failed(g, ErrorCode.group_authorization_failed, None)
              for g in wanted if g not in permitted]
    return {"throttle_time": 0, "groups": denied + described}


def _failed(group_id: str, code: ErrorCode, message: str | None) -> dict[str, Any]:
    return {"error_code": code, "error_message": message, "group_id": group_id,
            "group_state": "", "group_epoch": -1, "assignment_epoch": -1,
            "assignor_name": "", "members": []}


def _topics_describable(ctx: RequestContext, group: dict[str, Any]) -> bool:
    if not ctx.broker.authorizer.enabled:
        return True
    names = {tp["topic_name"] for member in group["members"]
             for tp in member["assignment"]["topic_partitions"]}
    return len(authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, names)) == \
        len(names)
