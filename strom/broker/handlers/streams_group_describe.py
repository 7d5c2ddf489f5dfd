"""StreamsGroupDescribe: streams groups (KIP-1071), their topology, members and tasks.

Versions: 0 (Kafka 4.4's v1 adds KIP-1331 topology descriptions). A group of
another type gets GROUP_ID_NOT_FOUND "Group x is not a streams group.", an
unknown one "Group x not found.", as in Kafka. DESCRIBE on the group is
needed, and DESCRIBE on every topic of its topology (else
TOPIC_AUTHORIZATION_FAILED for that group, as Kafka 4.x).
"""

from __future__ import annotations

from typing import Any

from strom.broker.context import RequestContext
from strom.broker.group_authorization import describe_modern_groups
from strom.broker.router import handles
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey


def _failed(group_id: str, code: ErrorCode, message: str | None) -> dict[str, Any]:
    return {"error_code": code, "error_message": message, "group_id": group_id,
            "group_state": "", "group_epoch": -1, "assignment_epoch": -1, "topology": None,
            "members": []}


@handles(ApiKey.STREAMS_GROUP_DESCRIBE)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    return await describe_modern_groups(
        ctx, request, ctx.broker.groups.streams.describe, _topics, _failed,
        "The described group uses topics that the client is not authorized to describe.")


def _topics(group: dict[str, Any]) -> set[str]:
    # The streams group's code loads with the group coordinator, not at start
    # (streams_group_heartbeat.py).
    from strom.coordinator.group.streams_topology import topic_names

    topology = group["topology"]
    if topology is None or topology["subtopologies"] is None:
        return set()
    return topic_names(topology)
