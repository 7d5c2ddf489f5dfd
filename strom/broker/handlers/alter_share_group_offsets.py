"""AlterShareGroupOffsets: set an empty share group's start offsets (KIP-932).

Versions: 0. Sent to the group's coordinator (kafka-share-groups.sh
--reset-offsets --execute). READ on the group (else
GROUP_AUTHORIZATION_FAILED for the request) and on each topic (else its
partitions answer TOPIC_AUTHORIZATION_FAILED), as Kafka's KafkaApis checks
them; the rest is coordinator/group/share_offsets.py.
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


@handles(ApiKey.ALTER_SHARE_GROUP_OFFSETS)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    group_id = request.group_id
    if not allowed(ctx, AclOperation.READ, ResourceType.GROUP, group_id):
        code = ErrorCode.group_authorization_failed
        return _error(code, DENIED_MESSAGES[code])
    permitted = authorized_names(ctx, AclOperation.READ, ResourceType.TOPIC,
                                 [t.topic_name for t in request.topics])
    denied = ErrorCode.topic_authorization_failed
    topics = {t.topic_name: {int(p.partition_index): int(p.start_offset) for p in t.partitions}
              for t in request.topics if t.topic_name in permitted}
    # Denied topics are answered whatever the group's answer, as KafkaApis merges them.
    try:
        results = await ShareOffsetsAdmin(ctx.broker.groups).alter(group_id, topics)
        code, message = ErrorCode.none, None
    except KafkaError as exc:
        results, code, message = [], exc.code, exc.message
    responses = [{"topic_name": r.name, "topic_id": r.topic_id, "partitions": [
        {"partition_index": p, "error_code": c, "error_message": m}
        for p, c, m in r.partitions]} for r in results]
    responses += [{"topic_name": t.topic_name, "topic_id": None, "partitions": [
        {"partition_index": p.partition_index, "error_code": denied,
         "error_message": DENIED_MESSAGES[denied]} for p in t.partitions]}
        for t in request.topics if t.topic_name not in permitted]
    return {"throttle_time": 0, "error_code": code, "error_message": message,
            "responses": responses}
