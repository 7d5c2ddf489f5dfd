"""What the modern group types' requests (KIP-848 consumer, KIP-932 share,
KIP-1071 streams groups) check alike, as Kafka 4.x checks them.

A heartbeat needs READ on the group (else GROUP_AUTHORIZATION_FAILED) and
DESCRIBE on every topic it subscribes to (else TOPIC_AUTHORIZATION_FAILED).
Of a describe request: DESCRIBE on a group is needed to describe it (else
GROUP_AUTHORIZATION_FAILED, listed first, as Kafka does); and, since Kafka
4.x (KAFKA-18813), DESCRIBE on every topic the description names (else
TOPIC_AUTHORIZATION_FAILED for that group). A described group carries the
caller's operations on it (KIP-430) when asked for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from strom.broker.authorization import allowed, authorized_names, operations_if
from strom.broker.context import RequestContext
from strom.errors import ErrorCode
from strom.security.acl_types import AclOperation, ResourceType

Described = dict[str, Any]


def heartbeat_denied(ctx: RequestContext, group_id: str, topics: Iterable[str] | None
                     ) -> ErrorCode | None:
    """The error of a heartbeat to `group_id` subscribing to `topics` the caller may
    not send, or None."""
    if not allowed(ctx, AclOperation.READ, ResourceType.GROUP, group_id):
        return ErrorCode.group_authorization_failed
    names = set(topics or ())
    if names and len(authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, names)
                     ) < len(names):
        return ErrorCode.topic_authorization_failed
    return None


async def describe_modern_groups(
        ctx: RequestContext, request: Any,
        describe: Callable[[list[str]], Awaitable[list[Described]]],
        topics: Callable[[Described], Iterable[str]],
        failed: Callable[[str, ErrorCode, str | None], Described],
        topics_denied_message: str) -> dict[str, Any]:
    """The response to a modern group type's describe request: `describe` the
    permitted groups, `topics` the names a description holds, `failed` the entry
    of a group that is not described."""
    include = bool(request.include_authorized_operations)
    wanted = list(request.group_ids)
    permitted = authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.GROUP, wanted)
    described = await describe([g for g in wanted if g in permitted])
    for i, group in enumerate(described):
        if group["error_code"] != ErrorCode.none:
            continue
        if not _topics_describable(ctx, topics, group):
            described[i] = failed(group["group_id"], ErrorCode.topic_authorization_failed,
                                  topics_denied_message)
            continue
        group["authorized_operations"] = operations_if(ctx, include, ResourceType.GROUP,
                                                       group["group_id"])
    denied = [failed(g, ErrorCode.group_authorization_failed, None)
              for g in wanted if g not in permitted]
    return {"throttle_time": 0, "groups": denied + described}


def not_described(group_id: str, code: ErrorCode, message: str | None) -> Described:
    """The entry of a consumer or share group that is not described (both name their
    assignor; a streams group's entry has a topology instead)."""
    return {"error_code": code, "error_message": message, "group_id": group_id,
            "group_state": "", "group_epoch": -1, "assignment_epoch": -1,
            "assignor_name": "", "members": []}


def _topics_describable(ctx: RequestContext, topics: Callable[[Described], Iterable[str]],
                        group: Described) -> bool:
    if not ctx.broker.authorizer.enabled:
        return True
    names = set(topics(group))
    return len(authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, names)) == \
        len(names)
