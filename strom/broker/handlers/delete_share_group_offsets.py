"""DeleteShareGroupOffsets: forget an empty share group's state for topics (KIP-932).

Versions: 0. Sent to the group's coordinator (kafka-share-groups.sh
--delete-offsets). DELETE on the group (else GROUP_AUTHORIZATION_FAILED for
the request) and READ on each topic (else TOPIC_AUTHORIZATION_FAILED for
it), as Kafka's KafkaApis checks them; the rest is
coordinator/group/share_offsets.py.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import DENIED_MESSAGES, allowed, authorized_names
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.coordinator.group.share_offsets import ShareOffsetsAdmin
from strom.errors import ErrorCode, KafkaError
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation, ResourceType


def _error(code: ErrorCode, message: str | None) -> dict[str, Any]:
    return {"throttle_time": 0, "error_code": code, "error_message": message,
            "responses": []}


@handles(ApiKey.DELETE_SHARE_GROUP_OFFSETS)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    group_id = request.group_id
    if not allowed(ctx, AclOperation.DELETE, ResourceType.GROUP, group_id):
        code = ErrorCode.group_authorization_failed
        return _error(code, DENIED_MESSAGES[code])
    names = [t.topic_name for t in request.topics]
    permitted = authorized_names(ctx, AclOperation.READ, ResourceType.TOPIC, names)
    # Denied topics are answered whatever the group's answer, as KafkaApis merges them.
    try:
        results = await ShareOffsetsAdmin(ctx.broker.groups).delete(
            group_id, [n for n in names if n in permitted])
        code, message = ErrorCode.none, None
    except KafkaError as exc:
        results, code, message = [], exc.code, exc.message
    denied = ErrorCode.topic_authorization_failed
    responses = [{"topic_name": r.name, "topic_id": r.topic_id, "error_code": r.error,
                  "error_message": r.message} for r in results]
    responses += [{"topic_name": n, "topic_id": None, "error_code": denied,
                   "error_message": DENIED_MESSAGES[denied]} for n in names if n not in permitted]
    return {"throttle_time": 0, "error_code": code, "error_message": message,
            "responses": responses}
