"""Share groups' start offsets as admins see them (KIP-932): Describe, Alter and
DeleteShareGroupOffsets, in the group coordinator as Kafka 4.4 has them.

A share group has no committed offsets; each share partition's state (start
offset, in-flight batches) lives with the share coordinator and is reached
through the broker's `Persister`. The group coordinator keeps which
partitions a group initialized (ShareGroupStatePartitionMetadata: its
initializing, initialized and deleting topics); these operations keep that
record and the share state in step:

- Describe: a share partition's start offset and leader epoch from its state
  summary, and its lag = latest offset - start offset - delivery-complete
  count (-1 when either is unknown). Without topics: every partition the
  group initialized (none for a group that is missing or of another type).
  With topics: those, whatever the group; an unknown topic answers a zero
  topic id and start offset -1, as Kafka does.
- Alter: the group (created if missing, as Kafka's getOrMaybeCreateShareGroup)
  must be empty (NON_EMPTY_GROUP); the partitions are recorded as
  initializing, their state is initialized with the given start offset and
  the group epoch as state epoch (a share-partition leader holding older
  state is fenced by it), then recorded as initialized (which also bumps the
  group epoch, so the next alter fences this one's state).
- Delete: the group must exist and be empty; topics it never initialized
  are UNKNOWN_TOPIC_OR_PARTITION ("There is no offset information to
  delete."); the others are recorded as deleting, their state deleted, then
  forgotten.

Every operation on the group's records runs in its shard (runtime.write);
the persister calls run between them, as Kafka's do.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from strom.coordinator.group import share_records as srec
from strom.coordinator.group.errors import GroupIdNotFoundError, NonEmptyGroupError
from strom.coordinator.group.records import encode
from strom.coordinator.group.share_group import ShareGroup
from strom.coordinator.group.share_protocol import TopicInit
from strom.coordinator.runtime import Result
from strom.coordinator.share.persister import Persister
from strom.errors import CoordinatorNotAvailableError, ErrorCode, KafkaError

if TYPE_CHECKING:
    from strom.coordinator.group.service import GroupCoordinator
    from strom.coordinator.group.shard import GroupCoordinatorShard

log = logging.getLogger(__name__)

NO_OFFSET_INFO = "There is no offset information to delete."

#: The latest offsets of (topic name, partition)s; those it cannot tell are left out.
LatestOffsets = Callable[[list[tuple[str, int]]], Awaitable[Mapping[tuple[str, int], int]]]


@dataclass(frozen=True, slots=True)
class PartitionOffset:
    partition: int
    start_offset: int = -1
    leader_epoch: int = 0
    lag: int = -1
    error: ErrorCode = ErrorCode.none
    message: str | None = None


@dataclass(frozen=True, slots=True)
class TopicOffsets:
    name: str
    topic_id: uuid.UUID
    partitions: tuple[PartitionOffset, ...]


@dataclass(frozen=True, slots=True)
class TopicResult:
    """A topic's (or, with `partitions`, each partition's) answer to Alter/Delete."""

    name: str
    topic_id: uuid.UUID
    error: ErrorCode = ErrorCode.none
    message: str | None = None
    partitions: tuple[tuple[int, ErrorCode, str | None], ...] = ()


# -- shard operations (the group's records) ---------------------------------------------


def _state_record(group_id: str, initializing: Mapping[uuid.UUID, tuple[str, frozenset[int]]],
                  initialized: Mapping[uuid.UUID, tuple[str, frozenset[int]]],
                  deleting: Mapping[uuid.UUID, str]) -> tuple[bytes, bytes | None]:
    return encode(srec.ShareGroupStatePartitionMetadataKey(group_id),
                  srec.ShareGroupStatePartitionMetadataValue(
                      tuple(srec.TopicStateInfo(t, n, ps)
                            for t, (n, ps) in initializing.items() if ps),
                      tuple(srec.TopicStateInfo(t, n, ps)
                            for t, (n, ps) in initialized.items() if ps),
                      tuple(srec.TopicStateInfo(t, n) for t, n in deleting.items())))


def _empty_share_group(shard: GroupCoordinatorShard, group_id: str, *,
                       create: bool) -> ShareGroup:
    existing = shard.groups.get(group_id)
    if existing is None and create:
        return ShareGroup(group_id)
    if existing is None:
        raise GroupIdNotFoundError(f"Group {group_id} not found.")
    if not isinstance(existing, ShareGroup):
        raise GroupIdNotFoundError(f"Group {group_id} is not a share group.")
    if not existing.is_empty:
        raise NonEmptyGroupError(f"Share group {group_id} is not empty.")
    return existing


def begin_alter(shard: GroupCoordinatorShard, group_id: str,
                topics: tuple[TopicInit, ...]) -> Result[int]:
    """Record `topics` as initializing (creating the group if missing); the
    state epoch to initialize them with (the group epoch)."""
    group = _empty_share_group(shard, group_id, create=True)
    if not topics:
        return Result(group.group_epoch)
    initializing = dict(group.initializing)
    for topic_id, name, partitions in topics:
        _, old = initializing.get(topic_id, (name, frozenset()))
        initializing[topic_id] = (name, old | partitions)
    deleting = {t: n for t, n in group.deleting.items()
                if t not in {topic_id for topic_id, _, _ in topics}}
    return Result(group.group_epoch,
                  [_state_record(group_id, initializing, group.initialized, deleting)])


def begin_delete(shard: GroupCoordinatorShard, group_id: str,
                 topic_ids: Mapping[uuid.UUID, str]) -> Result[dict[uuid.UUID, frozenset[int]]]:
    """Move the group's `topic_ids` it initialized to deleting; the partitions
    whose state to delete, per topic (a topic absent: nothing to delete)."""
    group = _empty_share_group(shard, group_id, create=False)
    initializing = dict(group.initializing)
    initialized = dict(group.initialized)
    deleting = dict(group.deleting)
    found: dict[uuid.UUID, frozenset[int]] = {}
    for topic_id, name in topic_ids.items():
        parts = (initialized.pop(topic_id, (name, frozenset()))[1]
                 | initializing.pop(topic_id, (name, frozenset()))[1])
        if parts or topic_id in deleting:
            found[topic_id] = parts
            deleting[topic_id] = name
    if not found:
        return Result(found)
    return Result(found, [_state_record(group_id, initializing, initialized, deleting)])


def complete_delete(shard: GroupCoordinatorShard, group_id: str,
                    topic_ids: Iterable[uuid.UUID]) -> Result[None]:
    """The state of `topic_ids` is gone: forget them (Kafka's completeDeleteShareGroupOffsets)."""
    group = shard.groups.get(group_id)
    if not isinstance(group, ShareGroup):
        return Result(None)
    deleting = {t: n for t, n in group.deleting.items() if t not in set(topic_ids)}
    return Result(None, [_state_record(group_id, group.initializing, group.initialized,
                                       deleting)])


def initialized_partitions(shard: GroupCoordinatorShard, group_id: str
                           ) -> dict[uuid.UUID, tuple[str, frozenset[int]]]:
    """None for a group that is missing or not a share group, as Kafka's
    initializedShareGroupPartitions (its describe then lists no topics)."""
    group = shard.groups.get(group_id)
    return dict(group.initialized) if isinstance(group, ShareGroup) else {}


# -- the APIs -----------------------------------------------------------------------------


class ShareOffsetsAdmin:
    def __init__(self, coordinator: GroupCoordinator) -> None:
        self._coordinator = coordinator

    def _persister(self) -> Persister:
        persister = self._coordinator.share.persister
        if persister is None:
            raise CoordinatorNotAvailableError("no share coordinator on this broker")
        return persister

    async def describe(self, group_id: str, topics: Mapping[str, list[int]] | None,
                       latest_offsets: LatestOffsets) -> list[TopicOffsets]:
        """Raises KafkaError for the whole group (NOT_COORDINATOR, GROUP_ID_NOT_FOUND, ...)."""
        coordinator = self._coordinator
        image = coordinator.metadata.image
        wanted: list[tuple[str, uuid.UUID | None, list[int]]] = []
        if topics is None:
            initialized = coordinator.runtime.read(
                coordinator.partition_for(group_id),
                lambda shard: initialized_partitions(shard, group_id))
            for topic_id, (_name, done) in initialized.items():
                topic = image.topic_by_id(topic_id)
                if topic is not None:  # a deleted topic's state is not described
                    wanted.append((topic.name, topic_id, sorted(done)))
        else:
            for name, asked in topics.items():
                info = image.topics.get(name)
                wanted.append((name, info.topic_id if info is not None else None, asked))
        persister = self._persister()
        latest = await latest_offsets([(name, p) for name, topic_id, parts in wanted
                                       if topic_id is not None for p in parts])

        async def one(name: str, topic_id: uuid.UUID, partition: int) -> PartitionOffset:
            try:
                summary = await persister.read_summary(group_id, topic_id, partition)
            except KafkaError as exc:
                return PartitionOffset(partition, error=exc.code, message=exc.message)
            if summary is None:
                return PartitionOffset(partition, -1, 0)
            lag = -1
            end = latest.get((name, partition))
            complete = summary.delivery_complete_count
            if summary.start_offset != -1 and complete != -1 and end is not None:
                lag = max(end - summary.start_offset - complete, 0)
            return PartitionOffset(partition, summary.start_offset, summary.leader_epoch, lag)

        out: list[TopicOffsets] = []
        for name, maybe_id, parts in wanted:
            if maybe_id is None:
                out.append(TopicOffsets(name, uuid.UUID(int=0),
                                        tuple(PartitionOffset(p) for p in parts)))
                continue
            topic_id = maybe_id
            answers = await asyncio.gather(*(one(name, topic_id, p) for p in parts))
            out.append(TopicOffsets(name, topic_id, tuple(answers)))
        return out

    async def alter(self, group_id: str, topics: Mapping[str, Mapping[int, int]]
                    ) -> list[TopicResult]:
        """Raises KafkaError for the whole request (NON_EMPTY_GROUP, NOT_COORDINATOR, ...)."""
        coordinator = self._coordinator
        image = coordinator.metadata.image
        results: dict[str, TopicResult] = {}
        inits: list[TopicInit] = []
        starts: dict[tuple[uuid.UUID, int], int] = {}
        for name, offsets in topics.items():
            info = image.topics.get(name)
            if info is None:
                results[name] = TopicResult(name, uuid.UUID(int=0), partitions=tuple(
                    (p, ErrorCode.unknown_topic_or_partition, "This server does not host "
                     "this topic-partition.") for p in offsets))
                continue
            known = frozenset(p for p in offsets if 0 <= p < len(info.partitions))
            results[name] = TopicResult(name, info.topic_id, partitions=tuple(
                (p, ErrorCode.none if p in known else ErrorCode.unknown_topic_or_partition,
                 None if p in known else "This server does not host this topic-partition.")
                for p in offsets))
            if known:
                inits.append((info.topic_id, name, known))
                starts.update({(info.topic_id, p): offsets[p] for p in known})
        partition = coordinator.partition_for(group_id)
        state_epoch = await coordinator.runtime.write(
            partition, lambda shard: begin_alter(shard, group_id, tuple(inits)))
        if not inits:
            return list(results.values())
        persister = self._persister()

        async def init(topic_id: uuid.UUID, p: int) -> ErrorCode:
            try:
                await persister.initialize_state(group_id, topic_id, p, state_epoch,
                                                 starts[(topic_id, p)])
            except KafkaError as exc:
                log.warning("share group %s: altering the start offset of %s-%d failed: %s",
                            group_id, topic_id, p, exc)
                return exc.code
            return ErrorCode.none

        keys = [(t, p) for t, _, ps in inits for p in sorted(ps)]
        codes = dict(zip(keys, await asyncio.gather(*(init(t, p) for t, p in keys)),
                         strict=True))
        ok = all(c == ErrorCode.none for c in codes.values())
        await coordinator.runtime.write(
            partition, lambda shard: shard.share.initialized(group_id, tuple(inits), ok))
        for topic_id, name, _ in inits:
            answers = []
            for p, code, message in results[name].partitions:
                if code == ErrorCode.none:
                    code = codes.get((topic_id, p), code)
                answers.append((p, code, message))
            results[name] = TopicResult(name, topic_id, partitions=tuple(answers))
        return list(results.values())

    async def delete(self, group_id: str, topic_names: list[str]) -> list[TopicResult]:
        """Raises KafkaError for the whole request (GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP, ...)."""
        coordinator = self._coordinator
        image = coordinator.metadata.image
        ids: dict[uuid.UUID, str] = {}
        for name in topic_names:
            info = image.topics.get(name)
            if info is not None:
                ids[info.topic_id] = name
        partition = coordinator.partition_for(group_id)
        found = await coordinator.runtime.write(
            partition, lambda shard: begin_delete(shard, group_id, ids))
        results: dict[str, TopicResult] = {}
        for name in topic_names:
            info = image.topics.get(name)
            if info is None or info.topic_id not in found:
                results[name] = TopicResult(
                    name, info.topic_id if info is not None else uuid.UUID(int=0),
                    ErrorCode.unknown_topic_or_partition, NO_OFFSET_INFO)
        if not found:
            return list(results.values())
        persister = self._persister()

        async def delete_topic(topic_id: uuid.UUID, parts: frozenset[int]) -> ErrorCode:
            try:
                await asyncio.gather(*(persister.delete_state(group_id, topic_id, p)
                                       for p in sorted(parts)))
            except KafkaError as exc:
                log.warning("share group %s: deleting the state of %s failed: %s",
                            group_id, topic_id, exc)
                return exc.code
            return ErrorCode.none

        codes = dict(zip(found, await asyncio.gather(
            *(delete_topic(t, ps) for t, ps in found.items())), strict=True))
        deleted = [t for t, c in codes.items() if c == ErrorCode.none]
        await coordinator.runtime.write(
            partition, lambda shard: complete_delete(shard, group_id, deleted))
        for topic_id, code in codes.items():
            name = ids[topic_id]
            results[name] = TopicResult(name, topic_id, code)
        return [results[n] for n in topic_names if n in results]
