"""Incremental fetch sessions (KIP-227), sans-I/O.

A consumer with many partitions sends every partition in every fetch and
gets every partition back, even when nothing changed. With a session the
broker remembers the partitions and their fetch positions; later requests
carry only what changed on the client's side (a moved fetch offset, added
partitions, `forgotten_topics_data`), and responses only what changed on the
broker's side: new records, a moved high watermark / last stable offset /
log start offset, an error, a diverging epoch, or a partition just added.

The request's (session_id, session_epoch) says which case it is, as in Kafka:
- epoch -1 (FINAL): a full fetch without a session; a session named is closed.
- epoch 0 (INITIAL): a full fetch that asks for a new session (a session
  named is closed first). The response carries the new id, or 0 when the
  cache has no slot for it; the client then keeps sending full fetches.
- epoch > 0 with a session id: incremental. Unknown id:
  FETCH_SESSION_ID_NOT_FOUND; an epoch other than the expected one:
  INVALID_FETCH_SESSION_EPOCH; a session created with topic ids (v13+) used
  without them or the other way round: FETCH_SESSION_TOPIC_ID_ERROR.
  A session left with no partitions is closed (the response has id 0).

The cache holds at most `max.incremental.fetch.session.cache.slots` sessions
(Kafka's default 1000). When it is full a new session takes a slot only by
eviction, with Kafka's rules: first the least recently used session if idle
longer than min.incremental.fetch.session.eviction.ms (120 s); otherwise the
least valuable evictable session, if the new one is worth more. Value orders
by privileged (a follower's) first, then number of partitions. A session is
evictable by anyone once it has lived longer than the eviction time (as of
its last use), and by a privileged session also before then unless it is
privileged itself.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from strom.errors import ErrorCode

INVALID_SESSION_ID = 0
INITIAL_EPOCH = 0
FINAL_EPOCH = -1
#: Kafka's min.incremental.fetch.session.eviction.ms (an internal setting there).
EVICTION_MS = 120_000
_MAX_ID = 2**31 - 1

#: A topic in a session: its id for sessions of v13+ requests, else its name.
TopicKey = str | uuid.UUID


@dataclass(slots=True)
class CachedPartition:
    """One partition of a session: what the client last asked for (shaped like
    a request's FetchPartition, so the handler reads it as one) and what the
    broker last told it (to answer only changes)."""

    partition: int
    fetch_offset: int
    partition_max_bytes: int
    current_leader_epoch: int = -1
    last_fetched_epoch: int = -1
    log_start_offset: int = -1
    # Last sent; -2 never matches a real value, so a new partition is answered.
    sent_high_watermark: int = -2
    sent_last_stable_offset: int = -2
    sent_log_start_offset: int = -2

    def update(self, wanted: Any) -> None:
        self.fetch_offset = wanted.fetch_offset
        self.partition_max_bytes = wanted.partition_max_bytes
        self.current_leader_epoch = getattr(wanted, "current_leader_epoch", -1)
        self.last_fetched_epoch = getattr(wanted, "last_fetched_epoch", -1)
        self.log_start_offset = getattr(wanted, "log_start_offset", -1)

    def must_answer(self, data: dict[str, Any]) -> bool:
        """Whether a partition's response entry tells the client something new;
        remembers what it tells."""
        changed = (data["error_code"] != 0 or bool(_records_size(data.get("records")))
                   or "diverging_epoch" in data
                   or data["high_watermark"] != self.sent_high_watermark
                   or data["last_stable_offset"] != self.sent_last_stable_offset
                   or data["log_start_offset"] != self.sent_log_start_offset)
        if changed:
            self.sent_high_watermark = data["high_watermark"]
            self.sent_last_stable_offset = data["last_stable_offset"]
            self.sent_log_start_offset = data["log_start_offset"]
        return changed


def _records_size(records: Any) -> int:
    if records is None:
        return 0
    if isinstance(records, bytes | bytearray | memoryview):
        return len(records)
    return sum(len(part) for part in records)


def _new_partition(wanted: Any) -> CachedPartition:
    cached = CachedPartition(wanted.partition, wanted.fetch_offset, wanted.partition_max_bytes)
    cached.update(wanted)
    return cached


@dataclass(slots=True)
class SessionTopic:
    """A topic to read, shaped like a request's FetchTopic."""

    topic: str | None
    topic_id: uuid.UUID | None
    partitions: list[CachedPartition]


@dataclass(slots=True)
class FetchSession:
    id: int
    privileged: bool
    uses_topic_ids: bool
    created_ms: int
    last_used_ms: int
    #: The epoch the next incremental request must carry.
    epoch: int = 1
    #: In reading order: a partition that returned records moves to the end,
    #: so that max_bytes does not starve the partitions behind it.
    partitions: dict[tuple[TopicKey, int], CachedPartition] = field(default_factory=dict)

    def value(self) -> tuple[bool, int]:
        return (self.privileged, len(self.partitions))

    def evictable_by_all(self, eviction_ms: int) -> bool:
        return self.last_used_ms - self.created_ms > eviction_ms


def next_epoch(epoch: int) -> int:
    if epoch < 0:
        return FINAL_EPOCH
    return 1 if epoch == _MAX_ID else epoch + 1


def _key(topic: Any, uses_topic_ids: bool) -> TopicKey:
    return topic.topic_id if uses_topic_ids else topic.topic  # type: ignore[no-any-return]


def _topic_fields(key: TopicKey) -> tuple[str | None, uuid.UUID | None]:
    return (None, key) if isinstance(key, uuid.UUID) else (key, None)


@dataclass(slots=True)
class FetchContext:
    """How to answer one fetch: an error for the whole request, or which
    topics to read and (finish) what of the result to send."""

    cache: FetchSessionCache
    error: ErrorCode = ErrorCode.none
    #: What to read: the request's own topics, or the session's partitions.
    topics: Sequence[Any] = ()
    #: A full fetch that asked for a session (created in finish if a slot is free).
    create: bool = False
    privileged: bool = False
    uses_topic_ids: bool = False
    session: FetchSession | None = None
    #: Partitions added by this incremental request: answered whatever they hold.
    added: set[tuple[TopicKey, int]] = field(default_factory=set)
    #: The session's epoch after this request; another request on the session
    #: meanwhile (a duplicate, or a full fetch closing it) voids this answer.
    epoch: int = 0

    def finish(self, responses: list[dict[str, Any]],
               now_ms: int) -> tuple[int, list[dict[str, Any]]]:
        """The response's session id and topics, given the handler's responses
        to `topics` (same order, one entry per topic and partition). Sets
        `error` when the session moved on while this fetch waited."""
        if self.create:
            return self._create(responses, now_ms), responses
        if self.session is None:
            return INVALID_SESSION_ID, responses
        session = self.session
        if session.epoch != self.epoch or self.cache.sessions.get(session.id) is not session:
            self.error = ErrorCode.invalid_fetch_session_epoch
            return session.id, []
        answered: list[dict[str, Any]] = []
        for topic, response in zip(self.topics, responses, strict=True):
            key = _key(topic, session.uses_topic_ids)
            kept = []
            for cached, data in zip(topic.partitions, response["partitions"], strict=True):
                ident = (key, cached.partition)
                if cached.must_answer(data) or ident in self.added:
                    kept.append(data)
                    if _records_size(data.get("records")):
                        moved = session.partitions.pop(ident, None)
                        if moved is not None:
                            session.partitions[ident] = moved
            if kept:
                answered.append({**response, "partitions": kept})
        return session.id, answered

    def _create(self, responses: list[dict[str, Any]], now_ms: int) -> int:
        def partitions() -> dict[tuple[TopicKey, int], CachedPartition]:
            built: dict[tuple[TopicKey, int], CachedPartition] = {}
            for topic, response in zip(self.topics, responses, strict=True):
                key = _key(topic, self.uses_topic_ids)
                for wanted, data in zip(topic.partitions, response["partitions"],
                                        strict=True):
                    cached = _new_partition(wanted)
                    cached.must_answer(data)
                    built[(key, wanted.partition)] = cached
            return built

        # Built only for a session that gets a slot (Kafka's FullFetchContext
        # too): with none free, each full fetch of 1,000 partitions would
        # build and drop 1,000 entries (10% of the broker's time).
        size = sum(len(topic.partitions) for topic in self.topics)
        session = self.cache.maybe_create(self.privileged, self.uses_topic_ids, size,
                                          partitions, now_ms)
        return session.id if session is not None else INVALID_SESSION_ID


class FetchSessionCache:
    """The broker's fetch sessions, by id (not tied to a connection, as in Kafka)."""

    def __init__(self, max_slots: int = 1000, *, eviction_ms: int = EVICTION_MS,
                 rng: random.Random | None = None) -> None:
        self.max_slots = max_slots
        self.eviction_ms = eviction_ms
        self._rng = rng or random.Random()
        self.sessions: dict[int, FetchSession] = {}
        #: Sessions created and evicted since start (for tests and metrics).
        self.created = 0
        self.evictions = 0

    def partitions(self) -> int:
        """Partitions held by all sessions (Kafka's NumIncrementalFetchPartitionsCached)."""
        return sum(len(s.partitions) for s in self.sessions.values())

    def new_context(self, *, session_id: int, epoch: int, topics: Sequence[Any],
                    forgotten: Iterable[Any], uses_topic_ids: bool, privileged: bool,
                    now_ms: int) -> FetchContext:
        if epoch in (INITIAL_EPOCH, FINAL_EPOCH):
            if session_id != INVALID_SESSION_ID:
                self.sessions.pop(session_id, None)
            return FetchContext(self, topics=topics, create=epoch == INITIAL_EPOCH,
                                privileged=privileged, uses_topic_ids=uses_topic_ids)
        session = self.sessions.get(session_id)
        if session is None:
            return FetchContext(self, error=ErrorCode.fetch_session_id_not_found)
        if session.epoch != epoch:
            return FetchContext(self, error=ErrorCode.invalid_fetch_session_epoch)
        if session.uses_topic_ids != uses_topic_ids:
            return FetchContext(self, error=ErrorCode.fetch_session_topic_id_error)
        added = self._update(session, topics, forgotten)
        if not session.partitions:
            del self.sessions[session.id]
            return FetchContext(self, topics=())
        session.last_used_ms = now_ms
        session.epoch = next_epoch(session.epoch)
        return FetchContext(self, topics=self._reading_order(session), session=session,
                            added=added, epoch=session.epoch)

    def forget_answers(self, session_id: int) -> None:
        """A session's response was replaced by an empty one (a throttled
        fetch, Kafka's getThrottledResponse): the client saw none of it, so the
        next incremental response answers every partition again."""
        session = self.sessions.get(session_id)
        for cached in session.partitions.values() if session is not None else ():
            cached.sent_high_watermark = cached.sent_last_stable_offset = -2
            cached.sent_log_start_offset = -2

    def _update(self, session: FetchSession, topics: Sequence[Any],
                forgotten: Iterable[Any]) -> set[tuple[TopicKey, int]]:
        added: set[tuple[TopicKey, int]] = set()
        for topic in topics:
            key = _key(topic, session.uses_topic_ids)
            for wanted in topic.partitions:
                ident = (key, wanted.partition)
                cached = session.partitions.get(ident)
                if cached is None:
                    session.partitions[ident] = _new_partition(wanted)
                    added.add(ident)
                else:
                    cached.update(wanted)
        for topic in forgotten:
            key = _key(topic, session.uses_topic_ids)
            for index in topic.partitions:
                session.partitions.pop((key, index), None)
                added.discard((key, index))
        return added

    @staticmethod
    def _reading_order(session: FetchSession) -> list[SessionTopic]:
        """The session's partitions as request topics; a topic met again after
        another one starts a new entry, so the order is kept exactly."""
        topics: list[SessionTopic] = []
        for (key, _index), cached in session.partitions.items():
            name, topic_id = _topic_fields(key)
            if not topics or (topics[-1].topic, topics[-1].topic_id) != (name, topic_id):
                topics.append(SessionTopic(name, topic_id, []))
            topics[-1].partitions.append(cached)
        return topics

    def maybe_create(self, privileged: bool, uses_topic_ids: bool, size: int,
                     partitions: Callable[[], dict[tuple[TopicKey, int], CachedPartition]],
                     now_ms: int) -> FetchSession | None:
        """A new session of `size` partitions (built by `partitions` only if
        it gets a slot), or None when the cache keeps none for it."""
        if self.max_slots <= 0:
            return None
        if len(self.sessions) >= self.max_slots and not self._evict(
                (privileged, size), privileged, now_ms):
            return None
        session_id = self._rng.randint(1, _MAX_ID)
        while session_id in self.sessions:
            session_id = self._rng.randint(1, _MAX_ID)
        session = FetchSession(session_id, privileged, uses_topic_ids, now_ms, now_ms,
                               partitions=partitions())
        self.sessions[session_id] = session
        self.created += 1
        return session

    def _evict(self, value: tuple[bool, int], privileged: bool, now_ms: int) -> bool:
        """Free one slot for a session worth `value`, or say it cannot be done."""
        stalest = min(self.sessions.values(), key=lambda s: (s.last_used_ms, s.id))
        if now_ms - stalest.last_used_ms > self.eviction_ms:
            return self._remove(stalest)
        candidates = [s for s in self.sessions.values()
                      if s.evictable_by_all(self.eviction_ms)
                      or (privileged and not s.privileged)]
        if not candidates:
            return False
        cheapest = min(candidates, key=lambda s: (*s.value(), s.id))
        # The new session (id 0 in Kafka's ordering) must be worth more.
        if value <= cheapest.value():
            return False
        return self._remove(cheapest)

    def _remove(self, session: FetchSession) -> bool:
        del self.sessions[session.id]
        self.evictions += 1
        return True
