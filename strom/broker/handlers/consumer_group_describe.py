"""ConsumerGroupDescribe: KIP-848 consumer groups, their members and assignments.

Versions: 0-1. A classic group gets GROUP_ID_NOT_FOUND ("not a consumer
group"), which is how Kafka's admin client knows to ask DescribeGroups. A
consumer group's classic members (KIP-848 migration) have member type 0 (v1).
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import authorized_names, operations_if
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation, ResourceType


@handles(ApiKey.CONSUMER_GROUP_DESCRIBE)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    groups = ctx.broker.groups
    include = bool(request.include_authorized_operations)
    wanted = list(request.group_ids)
    permitted = authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.GROUP, wanted)
    described = await groups.consumer_group_describe([g for g in wanted if g in permitted],
                                                     include)
    for i, group in enumerate(described):
        if group["error_code"] != ErrorCode.none:
            continue
        if not _topics_describable(ctx, group):
            # Kafka 4.x (KAFKA-18813): a group whose assignments name a topic the
            # caller may not describe is not described.
            described[i] = {
                "error_code": ErrorCode.topic_authorization_failed,
                "error_message": "The group has described topic(s) that the client is not "
                                 "authorized to describe.",
                "group_id": group["group_id"], "group_state": "", "group_epoch": -1,
                "assignment_epoch": -1, "assignor_name": "", "members": []}
            continue
        # KIP-430: what this principal may do on the group.
        group["authorized_operations"] = operations_if(ctx, include, ResourceType.GROUP,
                                                       group["group_id"])
    denied = [{"error_code": ErrorCode.group_authorization_failed, "error_message": None,
               "group_id": g, "group_state": "", "group_epoch": -1, "assignment_epoch": -1,
               "assignor_name": "", "members": []} for g in wanted if g not in permitted]
    return {"throttle_time": 0, "groups": denied + described}


def _topics_describable(ctx: RequestContext, group: dict[str, Any]) -> bool:
    if not ctx.broker.authorizer.enabled:
        return True
    names = {tp["topic_name"] for member in group["members"]
             for key in ("assignment", "target_assignment")
             for tp in member[key]["topic_partitions"]}
    return len(authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, names)) == \
        len(names)
