"""JoinGroup: a member joins (or rejoins) a classic group's rebalance.

Versions: 0-9. From v4 a new member first gets MEMBER_ID_REQUIRED with its
id (KIP-394); v5 adds static membership (group.instance.id, KIP-345); v9
lets a restarted static leader skip assigning. The response is parked until
the rebalance's join phase completes (see coordinator/group/classic_protocol.py).
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import allowed
from strom.broker.context import RequestContext
from strom.broker.faults import error_response
from strom.broker.router import handles
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.protocol.messages import to_millis
from strom.security.acl_types import AclOperation, ResourceType


@handles(ApiKey.JOIN_GROUP)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    version = ctx.api_version
    if not allowed(ctx, AclOperation.READ, ResourceType.GROUP, request.group_id):
        response = error_response(ApiKey.JOIN_GROUP, request,
                                  ErrorCode.group_authorization_failed)
    else:
        response = await _join(ctx, request)
    if version < 7 and response["protocol_name"] is None:
        response["protocol_name"] = ""  # not nullable before v7
    return response


async def _join(ctx: RequestContext, request: Any) -> dict[str, Any]:
    version = ctx.api_version
    groups = ctx.broker.groups
    # Loaded with the group coordinator (the first ctx.broker.groups), not at
    # start with the handlers (broker/coordinators.py; issue 19).
    from strom.coordinator.group.requests import JoinRequest

    session_timeout = to_millis(request.session_timeout)
    rebalance_timeout = to_millis(getattr(request, "rebalance_timeout", session_timeout))
    if rebalance_timeout < 0:
        rebalance_timeout = session_timeout
    response = await groups.join_group(JoinRequest(
        group_id=request.group_id,
        member_id=request.member_id,
        group_instance_id=getattr(request, "group_instance_id", None),
        session_timeout_ms=session_timeout,
        rebalance_timeout_ms=rebalance_timeout,
        protocol_type=request.protocol_type,
        protocols=tuple((p.name, bytes(p.metadata)) for p in request.protocols),
        client_id=ctx.header.client_id or "",
        client_host=ctx.client_host,
        reason=getattr(request, "reason", None),
        requires_known_member_id=version >= 4,
        supports_skip_assignment=version >= 9,
    ))
    return response
