"""AlterShareGroupOffsets: set an empty share group's start offsets (KIP-932).

Versions: 0. Sent to the group's coordinator (kafka-share-groups.sh
--reset-offsets --execute). READ on the group (else
GROUP_AUTHORIZATION_FAILED for the request) and on each topic (else its
partitions answer TOPIC_AUTHORIZATION_FAILED), as Kafka's KafkaApis checks
them; the rest is coordinator/group/share_offsets.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strom.broker.authorization import DENIED_MESSAGES
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.broker.share_offsets_requests import TOPIC_DENIED, share_offsets_response
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation

if TYPE_CHECKING:
    from strom.coordinator.group.share_offsets import ShareOffsetsAdmin, TopicResult


@handles(ApiKey.ALTER_SHARE_GROUP_OFFSETS)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    async def alter(admin: ShareOffsetsAdmin, permitted: set[str]) -> list[TopicResult]:
        return await admin.alter(request.group_id, {
            t.topic_name: {int(p.partition_index): int(p.start_offset) for p in t.partitions}
            for t in request.topics if t.topic_name in permitted})

    return await share_offsets_response(ctx, request, AclOperation.READ, alter, _answered,
                                        _denied)


def _answered(r: TopicResult) -> dict[str, Any]:
    return {"topic_name": r.name, "topic_id": r.topic_id, "partitions": [
        {"partition_index": p, "error_code": c, "error_message": m}
        for p, c, m in r.partitions]}


def _denied(topic: Any) -> dict[str, Any]:
    return {"topic_name": topic.topic_name, "topic_id": None, "partitions": [
        {"partition_index": p.partition_index, "error_code": TOPIC_DENIED,
         "error_message": DENIED_MESSAGES[TOPIC_DENIED]} for p in topic.partitions]}
