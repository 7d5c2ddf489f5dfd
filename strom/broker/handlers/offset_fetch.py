"""OffsetFetch: a group's committed offsets.

Versions: 1-10. v1 reports group errors on every partition, v2-7 at the
top; v8+ batches groups (KIP-709), v9 checks KIP-848 member epochs, v10
names topics by id. A null topic list (v2+) asks for every committed offset
of the group. Offsets never committed come back as -1 with no error.
`require_stable` (v7+) can only matter once transactions commit offsets.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import allowed, authorized_names
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.cluster.image import MetadataImage
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation, ResourceType


def _resolve(image: MetadataImage, topics: Any, by_id: bool
             ) -> tuple[list[tuple[str, list[int]]] | None, list[dict[str, Any]]]:
    """(topics to look up by name, topics answered already: unknown ids)."""
    if topics is None:
        return None, []
    wanted: list[tuple[str, list[int]]] = []
    unknown: list[dict[str, Any]] = []
    for t in topics:
        partitions = list(t.partition_indexes)
        if by_id:
            info = image.topic_by_id(t.topic_id) if t.topic_id is not None else None
            if info is None:
                unknown.append({"topic_id": t.topic_id, "name": "", "partitions": [
                    {"partition_index": p, "committed_offset": -1, "committed_leader_epoch": -1,
                     "metadata": "", "error_code": ErrorCode.unknown_topic_id}
                    for p in partitions]})
                continue
            wanted.append((info.name, partitions))
        else:
            wanted.append((t.name, partitions))
    return wanted, unknown


def _with_ids(image: MetadataImage, topics: list[dict[str, Any]], by_id: bool
              ) -> list[dict[str, Any]]:
    if not by_id:
        return topics
    out = []
    for t in topics:
        info = image.topics.get(t["name"])
        if info is not None:  # offsets of deleted topics have no id to report
            out.append({**t, "topic_id": info.topic_id})
    return out


async def _fetch(ctx: RequestContext, group_id: str, wanted: list[tuple[str, list[int]]] | None,
                 member_id: str | None = None, member_epoch: int = -1,
                 require_stable: bool = False) -> tuple[ErrorCode, list[dict[str, Any]]]:
    """The group's offsets as this principal may see them (Kafka: DESCRIBE on
    the group; named topics without DESCRIBE answer TOPIC_AUTHORIZATION_FAILED,
    and are left out of an all-topics answer)."""
    if not allowed(ctx, AclOperation.DESCRIBE, ResourceType.GROUP, group_id):
        return ErrorCode.group_authorization_failed, []
    groups = ctx.broker.groups
    if wanted is None:
        code, topics = await groups.fetch_offsets(group_id, None, member_id, member_epoch,
                                                  require_stable)
        if code == ErrorCode.none and ctx.broker.authorizer.enabled:
            visible = authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC,
                                       (t["name"] for t in topics))
            topics = [t for t in topics if t["name"] in visible]
        return code, topics
    visible = authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC,
                               (name for name, _ in wanted))
    code, topics = await groups.fetch_offsets(
        group_id, [(n, ps) for n, ps in wanted if n in visible], member_id, member_epoch,
        require_stable)
    if code == ErrorCode.none:
        topics += [{"name": name, "partitions": [
            {"partition_index": p, "committed_offset": -1, "committed_leader_epoch": -1,
             "metadata": "", "error_code": ErrorCode.topic_authorization_failed}
            for p in partitions]} for name, partitions in wanted if name not in visible]
    return code, topics


@handles(ApiKey.OFFSET_FETCH)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    image = ctx.broker.image
    version = ctx.api_version
    require_stable = bool(getattr(request, "require_stable", False))
    if version >= 8:
        by_id = version >= 10
        answered = []
        for g in request.groups:
            wanted, unknown = _resolve(image, g.topics, by_id)
            code, topics = await _fetch(
                ctx, g.group_id, wanted, getattr(g, "member_id", None),
                getattr(g, "member_epoch", -1), require_stable)
            answered.append({"group_id": g.group_id, "error_code": code,
                             "topics": _with_ids(image, topics, by_id)
                             + (unknown if code != ErrorCode.group_authorization_failed
                                else [])})
        return {"throttle_time": 0, "groups": answered}
    wanted, _ = _resolve(image, request.topics, False)
    code, topics = await _fetch(ctx, request.group_id, wanted,
                                require_stable=require_stable)
    if code != ErrorCode.none and version < 2:
        topics = [{"name": name, "partitions": [
            {"partition_index": p, "committed_offset": -1, "metadata": "", "error_code": code}
            for p in partitions]} for name, partitions in (wanted or [])]
        code = ErrorCode.none
    return {"throttle_time": 0, "topics": topics, "error_code": code}
