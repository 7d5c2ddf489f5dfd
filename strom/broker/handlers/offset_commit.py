"""OffsetCommit: store a group's consumed positions in `__consumer_offsets`.

Versions: 2-10. v2-4 carry a retention time (an explicit expire timestamp,
written as OffsetCommitValue v1); v6 the leader epoch; v7 group.instance.id;
v9 member epochs of KIP-848 groups; v10 names topics by id. Topics and
partitions that do not exist get UNKNOWN_TOPIC_OR_PARTITION (UNKNOWN_TOPIC_ID
by id) and are not written. Answered once the commit is fsync'd.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import allowed, authorized_names
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.cluster.image import MetadataImage
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.protocol.messages import to_millis
from strom.security.acl_types import AclOperation, ResourceType


def _name(image: MetadataImage, topic: Any, by_id: bool) -> str | None:
    if not by_id:
        return str(topic.name)
    info = image.topic_by_id(topic.topic_id) if topic.topic_id is not None else None
    return info.name if info is not None else None


@handles(ApiKey.OFFSET_COMMIT)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    groups = ctx.broker.groups
    # Loaded with the group coordinator (the first ctx.broker.groups), not at
    # start with the handlers (broker/coordinators.py; issue 19).
    from strom.coordinator.group.requests import CommitRequest, PartitionCommit

    image = ctx.broker.image
    by_id = ctx.api_version >= 10
    retention = -1
    if 2 <= ctx.api_version <= 4:
        retention = to_millis(request.retention_time)
    answered: list[dict[str, Any]] = []  # per request topic, in request order
    valid: list[tuple[str, tuple[PartitionCommit, ...]]] = []
    group_denied = not allowed(ctx, AclOperation.READ, ResourceType.GROUP, request.group_id)
    readable: set[str] = set()
    if not group_denied:
        readable = authorized_names(ctx, AclOperation.READ, ResourceType.TOPIC, (
            _name(image, t, by_id) for t in request.topics))
    for t in request.topics:
        topic_id = getattr(t, "topic_id", None)
        if by_id:
            info = image.topic_by_id(topic_id) if topic_id is not None else None
            missing = ErrorCode.unknown_topic_id
        else:
            info = image.topics.get(t.name)
            missing = ErrorCode.unknown_topic_or_partition
        name = info.name if info is not None else getattr(t, "name", "")
        errors: dict[int, ErrorCode] = {}
        commits = []
        for p in t.partitions:
            if group_denied:
                errors[p.partition_index] = ErrorCode.group_authorization_failed
            elif info is None and by_id:
                errors[p.partition_index] = missing
            elif name not in readable:
                errors[p.partition_index] = ErrorCode.topic_authorization_failed
            elif info is None:
                errors[p.partition_index] = missing
            elif not 0 <= p.partition_index < len(info.partitions):
                errors[p.partition_index] = ErrorCode.unknown_topic_or_partition
            else:
                commits.append(PartitionCommit(
                    p.partition_index, p.committed_offset,
                    getattr(p, "committed_leader_epoch", -1), p.committed_metadata))
        if commits:
            valid.append((name, tuple(commits)))
        answered.append({"name": name, "topic_id": topic_id if by_id else None,
                         "order": [p.partition_index for p in t.partitions], "errors": errors})
    committed: dict[tuple[str, int], ErrorCode] = {}
    if valid:
        result = await groups.commit_offsets(CommitRequest(
            group_id=request.group_id,
            generation_id_or_member_epoch=request.generation_id_or_member_epoch,
            member_id=request.member_id,
            group_instance_id=getattr(request, "group_instance_id", None),
            retention_time_ms=retention,
            topics=tuple(valid),
            api_version=ctx.api_version,
        ))
        for topic in result:
            for p in topic["partitions"]:
                committed[(topic["name"], p["partition_index"])] = p["error_code"]
    return {"throttle_time": 0, "topics": [{
        "name": a["name"], "topic_id": a["topic_id"],
        "partitions": [{"partition_index": i,
                        "error_code": a["errors"].get(i, committed.get((a["name"], i),
                                                                       ErrorCode.none))}
                       for i in a["order"]],
    } for a in answered]}
