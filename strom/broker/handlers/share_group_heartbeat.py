"""ShareGroupHeartbeat: joining, heartbeating in and leaving a share group (KIP-932).

Versions: 1 (Kafka 4.4's only version; the client generates its member id).
Epoch 0 joins, a positive epoch heartbeats, -1 leaves; the coordinator
assigns partitions with the simple assignor (coordinator/group/share_protocol.py).
Kafka's ACLs: READ on the group, DESCRIBE on every subscribed topic.
"""

from __future__ import annotations

from typing import Any

from strom.broker.context import RequestContext
from strom.broker.group_authorization import heartbeat_denied
from strom.broker.router import handles
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey


@handles(ApiKey.SHARE_GROUP_HEARTBEAT)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    names = request.subscribed_topic_names
    denied = heartbeat_denied(ctx, request.group_id, names)
    if denied is not None:
        return _refused(denied)
    share = ctx.broker.groups.share
    # Loaded with the group coordinator (the first ctx.broker.groups), not at
    # start with the handlers (broker/coordinators.py; issue 19).
    from strom.coordinator.group.requests import ShareHeartbeatRequest

    return await share.heartbeat(ShareHeartbeatRequest(
        group_id=request.group_id,
        member_id=request.member_id,
        member_epoch=request.member_epoch,
        rack_id=request.rack_id,
        subscribed_topic_names=tuple(names) if names is not None else None,
        client_id=ctx.header.client_id or "",
        client_host=ctx.client_host,
    ))


def _refused(code: ErrorCode) -> dict[str, Any]:
    return {"throttle_time": 0, "error_code": code, "error_message": None, "member_id": None,
            "member_epoch": 0, "heartbeat_interval": 0, "assignment": None}
