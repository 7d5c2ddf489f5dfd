"""Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete and offset expiry.

As Kafka's OffsetMetadataManager: the offsets of a shard's groups change only
by replaying OffsetCommit records (tombstones delete). A commit for a group
that does not exist, with generation -1, comes from a consumer assigning its
partitions itself or from an admin tool: replaying it creates a "simple"
group (Empty, no protocol type) to hold the offsets.

Expiry (KIP-211): every `offsets.retention.check.interval.ms` the offsets
whose group allows it (see `expiration_base`) and that are older than
`offsets.retention.minutes` are deleted; an empty group left with no offsets
is deleted with them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from strom.coordinator.group import records as rec
from strom.coordinator.group.context import ShardContext
from strom.coordinator.group.errors import (
    GroupIdNotFoundError,
    IllegalGenerationError,
)
from strom.coordinator.group.modern import PartitionCheck
from strom.coordinator.group.records import RecordPair
from strom.coordinator.group.requests import CommitRequest
from strom.coordinator.runtime import Result
from strom.errors import ErrorCode


@dataclass(frozen=True, slots=True)
class OffsetAndMetadata:
    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp: int
    expire_timestamp: int = -1


class OffsetGroup(Protocol):
    """What offsets need of a group, classic or consumer."""

    group_id: str

    @property
    def is_empty(self) -> bool: ...

    def validate_offset_commit(self, member_id: str, group_instance_id: str | None,
                               generation_id: int, *, transactional: bool = False,
                               api_version: int = 9) -> PartitionCheck | None: ...

    def is_subscribed_to_topic(self, topic: str) -> bool: ...

    def validate_offset_delete(self) -> None: ...


class OffsetStore:
    """group -> (topic, partition) -> committed offset; changed by replay only."""

    def __init__(self) -> None:
        self._by_group: dict[str, dict[tuple[str, int], OffsetAndMetadata]] = {}

    def replay(self, key: rec.OffsetCommitKey, value: rec.OffsetCommitValue | None) -> None:
        tp = (key.topic, key.partition)
        if value is None:
            offsets = self._by_group.get(key.group)
            if offsets is not None:
                offsets.pop(tp, None)
                if not offsets:
                    del self._by_group[key.group]
            return
        self._by_group.setdefault(key.group, {})[tp] = OffsetAndMetadata(
            value.offset, value.leader_epoch, value.metadata, value.commit_timestamp,
            value.expire_timestamp)

    def group(self, group_id: str) -> dict[tuple[str, int], OffsetAndMetadata]:
        return self._by_group.get(group_id, {})

    def has_offsets(self, group_id: str) -> bool:
        return bool(self._by_group.get(group_id))

    def group_ids(self) -> list[str]:
        return list(self._by_group)


def _tombstone(group_id: str, topic: str, partition: int) -> RecordPair:
    return rec.encode(rec.OffsetCommitKey(group_id, topic, partition), None)


class OffsetManager:
    def __init__(self, ctx: ShardContext, store: OffsetStore) -> None:
        self.ctx = ctx
        self.store = store

    def commit(self, request: CommitRequest) -> Result[list[dict[str, Any]]]:
        """Per-topic responses; a rejected commit raises the group-level error.

        A commit of a consumer or streams group member's older epoch is checked
        partition by partition (the epoch each was assigned at); as in Kafka 4.4, one
        partition refused refuses the whole commit, and nothing is written."""
        ctx = self.ctx
        group = ctx.groups.get(request.group_id)
        generation = request.generation_id_or_member_epoch
        check_partition: PartitionCheck | None = None
        if group is None:
            if generation >= 0:
                if request.api_version >= 9:
                    raise GroupIdNotFoundError(f"Group {request.group_id} not found.")
                raise IllegalGenerationError(f"group {request.group_id} does not exist")
        else:
            check_partition = group.validate_offset_commit(
                request.member_id, request.group_instance_id, generation,
                transactional=request.transactional, api_version=request.api_version)
        now = ctx.now_ms()
        expire = now + request.retention_time_ms if request.retention_time_ms != -1 else -1
        max_metadata = ctx.config.offset_metadata_max_bytes
        image = ctx.image() if check_partition is not None else None
        records: list[RecordPair] = []
        topics: list[dict[str, Any]] = []
        for topic, partitions in request.topics:
            info = image.topics.get(topic) if image is not None else None
            answered = []
            for p in partitions:
                metadata = p.metadata or ""
                code = ErrorCode.none
                if len(metadata) > max_metadata:
                    code = ErrorCode.offset_metadata_too_large
                elif check_partition is not None:
                    check_partition(topic, info.topic_id if info is not None else None,
                                    p.partition)
                if code == ErrorCode.none:
                    records.append(rec.encode(
                        rec.OffsetCommitKey(request.group_id, topic, p.partition),
                        rec.OffsetCommitValue(p.offset, p.leader_epoch, metadata, now, expire)))
                answered.append({"partition_index": p.partition, "error_code": code})
            topics.append({"name": topic, "partitions": answered})
        return Result(topics, records)

    def fetch(self, group_id: str, topics: list[tuple[str, list[int]]] | None
              ) -> list[tuple[str, list[tuple[int, OffsetAndMetadata | None]]]]:
        """Committed offsets of the partitions asked for (None: every one the group
        has), by topic. The caller has validated the group."""
        offsets = self.store.group(group_id)
        if topics is None:
            by_topic: dict[str, list[tuple[int, OffsetAndMetadata | None]]] = {}
            for (topic, partition), committed in sorted(offsets.items()):
                by_topic.setdefault(topic, []).append((partition, committed))
            return list(by_topic.items())
        return [(topic, [(p, offsets.get((topic, p))) for p in partitions])
                for topic, partitions in topics]

    def delete(self, group_id: str, topics: list[tuple[str, list[int]]]
               ) -> Result[list[dict[str, Any]]]:
        group = self.ctx.groups.get(group_id)
        if group is None:
            raise GroupIdNotFoundError(f"Group {group_id} not found.")
        group.validate_offset_delete()
        offsets = self.store.group(group_id)
        records: list[RecordPair] = []
        answered = []
        for topic, partitions in topics:
            subscribed = group.is_subscribed_to_topic(topic)
            parts = []
            for partition in partitions:
                if subscribed:
                    code = ErrorCode.group_subscribed_to_topic
                else:
                    code = ErrorCode.none
                    if (topic, partition) in offsets:
                        records.append(_tombstone(group_id, topic, partition))
                parts.append({"partition_index": partition, "error_code": code})
            answered.append({"name": topic, "partitions": parts})
        return Result(answered, records)

    def delete_all(self, group_id: str) -> list[RecordPair]:
        return [_tombstone(group_id, t, p) for t, p in self.store.group(group_id)]

    def expire(self, group_id: str, base: Callable[[OffsetAndMetadata], int] | None,
               subscribed: Callable[[str], bool]) -> tuple[list[RecordPair], bool]:
        """Tombstones of the group's expired offsets, and whether none is left."""
        offsets = self.store.group(group_id)
        if base is None:
            return [], not offsets
        now = self.ctx.now_ms()
        retention = self.ctx.config.offsets_retention_ms
        records: list[RecordPair] = []
        all_expired = True
        for (topic, partition), committed in offsets.items():
            if subscribed(topic):
                all_expired = False
                continue
            if committed.expire_timestamp != -1:
                expired = now >= committed.expire_timestamp
            else:
                expired = now - base(committed) >= retention
            if expired:
                records.append(_tombstone(group_id, topic, partition))
            else:
                all_expired = False
        return records, all_expired


def fetch_response_topics(found: Iterable[tuple[str, list[tuple[int, OffsetAndMetadata | None]]]]
                          ) -> list[dict[str, Any]]:
    return [{"name": topic, "partitions": [
        {"partition_index": p, "committed_offset": c.offset if c else -1,
         "committed_leader_epoch": c.leader_epoch if c else -1,
         "metadata": c.metadata if c else "", "error_code": ErrorCode.none}
        for p, c in parts]} for topic, parts in found]
