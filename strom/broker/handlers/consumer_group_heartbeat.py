"""ConsumerGroupHeartbeat: the KIP-848 consumer group protocol.

Versions: 0-1 (v1: the client generates its member id, KIP-1082). Joining
(epoch 0), heartbeating, leaving (-1) and static leaving (-2) are all this
one API; the coordinator assigns (see coordinator/group/consumer_protocol.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from strom.broker.authorization import authorized_names
from strom.broker.context import RequestContext
from strom.broker.group_authorization import heartbeat_denied
from strom.broker.router import handles
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.protocol.messages import to_millis
from strom.security.acl_types import AclOperation, ResourceType


@handles(ApiKey.CONSUMER_GROUP_HEARTBEAT)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    groups = ctx.broker.groups
    # Loaded with the group coordinator (the first ctx.broker.groups), not at
    # start with the handlers (broker/coordinators.py; issue 19).
    from strom.coordinator.group.requests import HeartbeatRequest

    owned = request.topic_partitions
    names = request.subscribed_topic_names
    denied = heartbeat_denied(ctx, request.group_id, names)
    if denied is not None:
        return _refused(denied)
    return await groups.consumer_group_heartbeat(HeartbeatRequest(
        group_id=request.group_id,
        member_id=request.member_id,
        member_epoch=request.member_epoch,
        instance_id=request.instance_id,
        rack_id=request.rack_id,
        rebalance_timeout_ms=to_millis(request.rebalance_timeout),
        subscribed_topic_names=tuple(names) if names is not None else None,
        subscribed_topic_regex=getattr(request, "subscribed_topic_regex", None),
        server_assignor=request.server_assignor,
        owned=tuple((tp.topic_id, tuple(tp.partitions)) for tp in owned)
        if owned is not None else None,
        client_id=ctx.header.client_id or "",
        client_host=ctx.client_host,
        api_version=ctx.api_version,
        describable=_describable(ctx) if ctx.broker.authorizer.enabled else None,
    ))


def _describable(ctx: RequestContext) -> Callable[[frozenset[str]], frozenset[str]]:
    """The topics of a regex this member may describe (Kafka 4.x leaves the
    others out of the resolved subscription)."""
    def keep(names: frozenset[str]) -> frozenset[str]:
        return frozenset(authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, names))
    return keep


def _refused(code: ErrorCode) -> dict[str, Any]:
    return {"throttle_time": 0, "error_code": code, "error_message": None, "member_id": None,
            "member_epoch": 0, "heartbeat_interval": 0, "assignment": None}
