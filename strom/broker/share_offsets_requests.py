"""What AlterShareGroupOffsets and DeleteShareGroupOffsets (KIP-932) do alike.

Both are sent to the group's coordinator and checked as Kafka's KafkaApis
checks them: an operation on the group (else GROUP_AUTHORIZATION_FAILED for
the whole request) and READ on each topic (else TOPIC_AUTHORIZATION_FAILED
for that topic, answered whatever the group's answer, as KafkaApis merges
them). The permitted topics go to coordinator/group/share_offsets.py; a
group-level error of it is the request's error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from strom.broker.authorization import DENIED_MESSAGES, allowed, authorized_names
from strom.broker.context import RequestContext
from strom.errors import ErrorCode, KafkaError
from strom.security.acl_types import AclOperation, ResourceType

if TYPE_CHECKING:
    from strom.coordinator.group.share_offsets import ShareOffsetsAdmin

R = TypeVar("R")
#: The topic-level error of a topic the caller may not READ.
TOPIC_DENIED = ErrorCode.topic_authorization_failed


def share_offsets_admin(ctx: RequestContext) -> ShareOffsetsAdmin:
    """The group coordinator's share-offsets operations. Their code is the group
    coordinator's, imported when it starts (broker/coordinators.py), not when
    the broker loads its handlers (it was ~25 ms of every start-up)."""
    from strom.coordinator.group.share_offsets import ShareOffsetsAdmin

    return ShareOffsetsAdmin(ctx.broker.groups)


async def share_offsets_response(
        ctx: RequestContext, request: Any, group_operation: AclOperation,
        run: Callable[[ShareOffsetsAdmin, set[str]], Awaitable[list[R]]],
        answered: Callable[[R], dict[str, Any]],
        denied_topic: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """The response: `run` the admin operation on the permitted topic names, each of
    its results `answered`, then each request topic not permitted `denied_topic`."""
    if not allowed(ctx, group_operation, ResourceType.GROUP, request.group_id):
        code = ErrorCode.group_authorization_failed
        return {"throttle_time": 0, "error_code": code, "error_message": DENIED_MESSAGES[code],
                "responses": []}
    permitted = authorized_names(ctx, AclOperation.READ, ResourceType.TOPIC,
                                 [t.topic_name for t in request.topics])
    try:
        results = await run(share_offsets_admin(ctx), permitted)
        code, message = ErrorCode.none, None
    except KafkaError as exc:
        results, code, message = [], exc.code, exc.message
    responses = [answered(r) for r in results]
    responses += [denied_topic(t) for t in request.topics if t.topic_name not in permitted]
    return {"throttle_time": 0, "error_code": code, "error_message": message,
            "responses": responses}
