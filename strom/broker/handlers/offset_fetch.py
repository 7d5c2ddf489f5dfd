"""OffsetFetch: a group's committed offsets.

Versions: 1-10. v1 reports group errors on every partition, v2-7 at the
top; v8+ batches groups (KIP-709), v9 checks KIP-848 member epochs, v10
names topics by id. A null topic list (v2+) asks for every committed offset
of the group. Offsets never committed come back as -1 with no error.
`require_stable` (v7+) can only matter once transactions commit offsets.
"""

from __future__ import annotations

from typing import Any

from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.cluster.image import MetadataImage
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey


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


@handles(ApiKey.OFFSET_FETCH)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    groups = ctx.broker.groups
    image = ctx.broker.image
    version = ctx.api_version
    require_stable = bool(getattr(request, "require_stable", False))
    if version >= 8:
        by_id = version >= 10
        answered = []
        for g in request.groups:
            wanted, unknown = _resolve(image, g.topics, by_id)
            code, topics = await groups.fetch_offsets(
                g.group_id, wanted, getattr(g, "member_id", None),
                getattr(g, "member_epoch", -1), require_stable)
            answered.append({"group_id": g.group_id, "error_code": code,
                             "topics": _with_ids(image, topics, by_id) + unknown})
        return {"throttle_time": 0, "groups": answered}
    wanted, _ = _resolve(image, request.topics, False)
    code, topics = await groups.fetch_offsets(request.group_id, wanted,
                                              require_stable=require_stable)
    if code != ErrorCode.none and version < 2:
        topics = [{"name": name, "partitions": [
            {"partition_index": p, "committed_offset": -1, "metadata": "", "error_code": code}
            for p in partitions]} for name, partitions in (wanted or [])]
        code = ErrorCode.none
    return {"throttle_time": 0, "topics": topics, "error_code": code}
