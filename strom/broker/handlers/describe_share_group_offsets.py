"""DescribeShareGroupOffsets: share groups' start offsets (KIP-932).

Versions: 0-1 (v1 adds Lag, KIP-1226). Sent to a group's coordinator
(kafka-share-groups.sh --describe --offsets). DESCRIBE on the group (else
GROUP_AUTHORIZATION_FAILED for it) and on each topic (else its partitions
answer TOPIC_AUTHORIZATION_FAILED), as Kafka's KafkaApis checks them; the
rest is coordinator/group/share_offsets.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from strom.broker.authorization import DENIED_MESSAGES, allowed, authorized_names
from strom.broker.context import RequestContext
from strom.broker.latest_offsets import latest_offsets
from strom.broker.router import handles
from strom.broker.share_offsets_requests import share_offsets_admin
from strom.errors import ErrorCode, KafkaError
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation, ResourceType


async def _latest(ctx: RequestContext, partitions: list[tuple[str, int]]
                  ) -> Mapping[tuple[str, int], int]:
    broker = ctx.broker
    return await latest_offsets(partitions, node_id=broker.node_id, image=lambda: broker.image,
                                replicas=broker.replicas, peers=broker.coordinators.peers)


async def _group(ctx: RequestContext, group: Any) -> dict[str, Any]:
    group_id = group.group_id
    if not allowed(ctx, AclOperation.DESCRIBE, ResourceType.GROUP, group_id):
        code = ErrorCode.group_authorization_failed
        return {"group_id": group_id, "topics": [], "error_code": code,
                "error_message": DENIED_MESSAGES[code]}
    denied: list[dict[str, Any]] = []
    topics: dict[str, list[int]] | None = None
    if group.topics is not None:
        names = [t.topic_name for t in group.topics]
        permitted = authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, names)
        topics = {}
        code = ErrorCode.topic_authorization_failed
        for t in group.topics:
            if t.topic_name in permitted:
                topics[t.topic_name] = [int(p) for p in t.partitions]
            else:
                denied.append({"topic_name": t.topic_name, "topic_id": None, "partitions": [
                    {"partition_index": p, "start_offset": -1, "leader_epoch": 0, "lag": -1,
                     "error_code": code, "error_message": DENIED_MESSAGES[code]}
                    for p in t.partitions]})
    try:
        described = await share_offsets_admin(ctx).describe(
            group_id, topics, lambda partitions: _latest(ctx, partitions))
    except KafkaError as exc:
        return {"group_id": group_id, "topics": [], "error_code": exc.code,
                "error_message": exc.message}
    return {"group_id": group_id, "error_code": ErrorCode.none, "error_message": None,
            "topics": [{"topic_name": t.name, "topic_id": t.topic_id, "partitions": [
                {"partition_index": p.partition, "start_offset": p.start_offset,
                 "leader_epoch": p.leader_epoch, "lag": p.lag, "error_code": p.error,
                 "error_message": p.message} for p in t.partitions]}
                for t in described] + denied}


@handles(ApiKey.DESCRIBE_SHARE_GROUP_OFFSETS)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    return {"throttle_time": 0, "groups": [await _group(ctx, g) for g in request.groups]}
