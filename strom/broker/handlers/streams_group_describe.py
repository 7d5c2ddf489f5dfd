"""StreamsGroupDescribe: streams groups (KIP-1071), their topology, members and tasks.

Versions: 0 (Kafka 4.4's v1 adds KIP-1331 topology descriptions). A group of
another type gets GROUP_ID_NOT_FOUND "Group x is not a streams group.", an
unknown one "Group x not found.", as in Kafka. DESCRIBE on the group is
needed, and DESCRIBE on every topic of its topology (else
TOPIC_AUTHORIZATION_FAILED for that group, as Kafka 4.x).
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import authorized_names, operations_if
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation, ResourceType


def _failed(group_id: str, code: ErrorCode, message: str | None) -> dict[str, Any]:
    return {"error_code": code, "error_message": message, "group_id": group_id,
            "group_state": "", "group_epoch": -1, "assignment_epoch": -1, "topology": None,
            "members": []}


@handles(ApiKey.STREAMS_GROUP_DESCRIBE)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    include = bool(request.include_authorized_operations)
    wanted = list(request.group_ids)
    permitted = authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.GROUP, wanted)
    described = await ctx.broker.groups.streams.describe([g for g in wanted if g in permitted])
    for i, group in enumerate(described):
        if group["error_code"] != ErrorCode.none:
            continue
        names = _topics(group)
        if ctx.broker.authorizer.enabled and len(authorized_names(
                ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, names)) < len(names):
            described[i] = _failed(group["group_id"], ErrorCode.topic_authorization_failed,
                                   "The described group uses topics that the client is not "
                                   "authorized to describe.")
            continue
        group["authorized_operations"] = operations_if(ctx, include, ResourceType.GROUP,
                                                       group["group_id"])
    denied = [_failed(g, ErrorCode.group_authorization_failed, None)
              for g in wanted if g not in permitted]
    return {"throttle_time": 0, "groups": denied + described}


def _topics(group: dict[str, Any]) -> set[str]:
    topology = group["topology"]
    names: set[str] = set()
    if topology is None or topology["subtopologies"] is None:
        return names
    for sub in topology["subtopologies"]:
        names.update(sub["source_topics"])
        names.update(sub["repartition_sink_topics"])
        names.update(t["name"] for t in sub["state_changelog_topics"])
        names.update(t["name"] for t in sub["repartition_source_topics"])
    return names
