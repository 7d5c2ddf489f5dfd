"""The fetch session cache (KIP-227), sans-I/O: epochs, incremental updates,
which partitions are answered, and Kafka's eviction rules. A hypothesis model
runs clients that track their own session state, as a Kafka client does,
against the cache and checks what the broker would read and answer."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from strom.broker.fetch_sessions import (
    EVICTION_MS,
    FINAL_EPOCH,
    INITIAL_EPOCH,
    FetchContext,
    FetchSessionCache,
)
from strom.errors import ErrorCode


def _topics(partitions: dict[tuple[str, int], int]) -> list[SimpleNamespace]:
    by_topic: dict[str, list[SimpleNamespace]] = {}
    for (topic, index), offset in partitions.items():
        by_topic.setdefault(topic, []).append(SimpleNamespace(
            partition=index, fetch_offset=offset, partition_max_bytes=1 << 20))
    return [SimpleNamespace(topic=t, topic_id=None, partitions=ps) for t, ps in by_topic.items()]


def _forgotten(partitions: set[tuple[str, int]]) -> list[SimpleNamespace]:
    by_topic: dict[str, list[int]] = {}
    for topic, index in partitions:
        by_topic.setdefault(topic, []).append(index)
    return [SimpleNamespace(topic=t, topic_id=None, partitions=ps) for t, ps in by_topic.items()]


def _answer(context: FetchContext, hw: dict[tuple[str, int], int],
            records: set[tuple[str, int]] = frozenset()) -> list[dict[str, Any]]:  # type: ignore[assignment]
    """What the handler would read for `context`: one entry per partition."""
    return [{"topic": t.topic, "topic_id": None, "partitions": [
        {"partition_index": p.partition, "error_code": 0,
         "high_watermark": hw.get((t.topic, p.partition), 0), "last_stable_offset":
         hw.get((t.topic, p.partition), 0), "log_start_offset": 0,
         "records": b"x" if (t.topic, p.partition) in records else b""}
        for p in t.partitions]} for t in context.topics]


def _read(context: FetchContext) -> dict[tuple[str, int], int]:
    return {(t.topic, p.partition): p.fetch_offset for t in context.topics for p in t.partitions}


def _answered(responses: list[dict[str, Any]]) -> set[tuple[str, int]]:
    return {(t["topic"], p["partition_index"]) for t in responses for p in t["partitions"]}


def _full(cache: FetchSessionCache, parts: dict[tuple[str, int], int], now: int = 0,
          *, privileged: bool = False) -> int:
    context = cache.new_context(session_id=0, epoch=INITIAL_EPOCH, topics=_topics(parts),
                                forgotten=(), uses_topic_ids=False, privileged=privileged,
                                now_ms=now)
    session_id, _ = context.finish(_answer(context, {}), now)
    return session_id


def _incremental(cache: FetchSessionCache, session_id: int, epoch: int, now: int = 0,
                 ) -> FetchContext:
    return cache.new_context(session_id=session_id, epoch=epoch, topics=(), forgotten=(),
                             uses_topic_ids=False, privileged=False, now_ms=now)


def test_incremental_answers_only_what_changed() -> None:
    cache = FetchSessionCache(10)
    parts = {("a", i): 0 for i in range(5)}
    session_id = _full(cache, parts)
    assert session_id != 0
    context = _incremental(cache, session_id, 1)
    assert _read(context) == parts  # the session remembers every partition
    session, responses = context.finish(_answer(context, {}), 0)
    assert session == session_id and responses == []  # nothing changed
    context = _incremental(cache, session_id, 2)
    _, responses = context.finish(_answer(context, {("a", 3): 7}, {("a", 1)}), 0)
    assert _answered(responses) == {("a", 1), ("a", 3)}
    # A partition that returned records moves to the end of the reading order.
    assert list(_read(_incremental(cache, session_id, 3))) == [
        ("a", 0), ("a", 2), ("a", 3), ("a", 4), ("a", 1)]


def test_epoch_and_id_errors() -> None:
    cache = FetchSessionCache(10)
    session_id = _full(cache, {("a", 0): 0})
    assert _incremental(cache, session_id + 1, 1).error == ErrorCode.fetch_session_id_not_found
    assert _incremental(cache, session_id, 2).error == ErrorCode.invalid_fetch_session_epoch
    assert _incremental(cache, session_id, 1).error == ErrorCode.none
    wrong_ids = cache.new_context(session_id=session_id, epoch=2, topics=(), forgotten=(),
                                  uses_topic_ids=True, privileged=False, now_ms=0)
    assert wrong_ids.error == ErrorCode.fetch_session_topic_id_error
    # FINAL epoch closes the session: a sessionless full fetch.
    closing = cache.new_context(session_id=session_id, epoch=FINAL_EPOCH, topics=(),
                                forgotten=(), uses_topic_ids=False, privileged=False, now_ms=0)
    assert closing.finish([], 0)[0] == 0
    assert _incremental(cache, session_id, 2).error == ErrorCode.fetch_session_id_not_found


def test_a_session_moved_on_voids_a_waiting_answer() -> None:
    cache = FetchSessionCache(10)
    session_id = _full(cache, {("a", 0): 0})
    waiting = _incremental(cache, session_id, 1)  # a fetch still long-polling
    duplicate = _incremental(cache, session_id, 2)
    assert waiting.finish(_answer(waiting, {}), 0) == (session_id, [])
    assert waiting.error == ErrorCode.invalid_fetch_session_epoch
    assert duplicate.finish(_answer(duplicate, {}), 0)[0] == session_id
    assert duplicate.error == ErrorCode.none
    closed = _incremental(cache, session_id, 3)
    cache.new_context(session_id=session_id, epoch=FINAL_EPOCH, topics=(), forgotten=(),
                      uses_topic_ids=False, privileged=False, now_ms=0)
    closed.finish(_answer(closed, {}), 0)
    assert closed.error == ErrorCode.invalid_fetch_session_epoch


def test_a_throttled_answer_is_repeated() -> None:
    cache = FetchSessionCache(10)
    session_id = _full(cache, {("a", 0): 0, ("a", 1): 0})
    context = _incremental(cache, session_id, 1)
    _, responses = context.finish(_answer(context, {("a", 1): 5}), 0)
    assert _answered(responses) == {("a", 1)}
    cache.forget_answers(session_id)  # the response was replaced by an empty one
    context = _incremental(cache, session_id, 2)
    _, responses = context.finish(_answer(context, {("a", 1): 5}), 0)
    assert _answered(responses) == {("a", 0), ("a", 1)}


def test_no_slots_no_sessions() -> None:
    assert _full(FetchSessionCache(0), {("a", 0): 0}) == 0


def test_eviction_rules() -> None:
    cache = FetchSessionCache(2, rng=random.Random(1))
    small = _full(cache, {("a", 0): 0}, now=0)
    big = _full(cache, {("a", i): 0 for i in range(3)}, now=0)
    # Full, every session young: an ordinary session of the same size gets none.
    assert _full(cache, {("b", 0): 0}, now=1) == 0
    # A privileged (follower) session evicts the smallest unprivileged one.
    follower = _full(cache, {("f", 0): 0}, now=2, privileged=True)
    assert follower != 0 and set(cache.sessions) == {big, follower}
    assert small not in cache.sessions and cache.evictions == 1
    # Once idle longer than the eviction time, the least recently used goes first.
    _incremental(cache, big, 1, now=EVICTION_MS)
    newcomer = _full(cache, {("c", 0): 0}, now=EVICTION_MS + 3)
    assert newcomer != 0 and set(cache.sessions) == {big, newcomer}
    # Sessions older than the eviction time (as of their last use) can be
    # evicted by a bigger new one, never by a smaller one.
    _incremental(cache, big, 2, now=2 * EVICTION_MS + 2)
    _incremental(cache, newcomer, 1, now=2 * EVICTION_MS + 4)
    assert _full(cache, {("d", 0): 0}, now=2 * EVICTION_MS + 5) == 0
    bigger = _full(cache, {("d", i): 0 for i in range(2)}, now=2 * EVICTION_MS + 6)
    assert bigger != 0 and set(cache.sessions) == {big, bigger}


@dataclass
class ClientModel:
    """A client's view of its session, as librdkafka or the Java client keeps it."""

    wanted: dict[tuple[str, int], int] = field(default_factory=dict)
    session_id: int = 0
    epoch: int = INITIAL_EPOCH
    #: What the session holds, as far as the client knows.
    sent: dict[tuple[str, int], int] = field(default_factory=dict)


PARTS = [(t, i) for t in "ab" for i in range(3)]
ops = st.lists(st.tuples(
    st.integers(0, 2),  # which client
    st.sampled_from(["fetch", "fetch", "fetch", "add", "forget", "seek", "close",
                     "bad_epoch", "append"]),
    st.sampled_from(PARTS), st.integers(0, 50), st.integers(0, EVICTION_MS // 2)),
    max_size=60)


@settings(max_examples=150, deadline=None)
@given(ops, st.integers(0, 3))
def test_clients_model_against_the_cache(steps: list[tuple[int, str, tuple[str, int], int, int]],
                                         slots: int) -> None:
    cache = FetchSessionCache(slots, rng=random.Random(0))
    clients = [ClientModel() for _ in range(3)]
    hw: dict[tuple[str, int], int] = {}
    last_hw: list[dict[tuple[str, int], int]] = [{} for _ in clients]
    now = 0
    for which, op, part, value, elapsed in steps:
        now += elapsed
        client = clients[which]
        if op == "append":
            hw[part] = hw.get(part, 0) + 1
        elif op == "add":
            client.wanted.setdefault(part, value)
        elif op == "forget":
            client.wanted.pop(part, None)
        elif op == "seek" and part in client.wanted:
            client.wanted[part] = value
        elif op == "close":
            context = cache.new_context(session_id=client.session_id, epoch=FINAL_EPOCH,
                                        topics=_topics(client.wanted), forgotten=(),
                                        uses_topic_ids=False, privileged=False, now_ms=now)
            assert context.finish(_answer(context, hw), now)[0] == 0
            assert _read(context) == client.wanted
            client.session_id, client.epoch, client.sent = 0, INITIAL_EPOCH, {}
        elif op == "bad_epoch" and client.session_id:
            context = _incremental(cache, client.session_id, client.epoch + 1 + value, now)
            assert context.error in (ErrorCode.invalid_fetch_session_epoch,
                                     ErrorCode.fetch_session_id_not_found)
        elif op == "fetch":
            _fetch(cache, client, hw, last_hw[which], now)
        assert len(cache.sessions) <= max(slots, 0)


def _fetch(cache: FetchSessionCache, client: ClientModel, hw: dict[tuple[str, int], int],
           last_hw: dict[tuple[str, int], int], now: int) -> None:
    if client.session_id == 0:
        context = cache.new_context(session_id=0, epoch=INITIAL_EPOCH,
                                    topics=_topics(client.wanted), forgotten=(),
                                    uses_topic_ids=False, privileged=False, now_ms=now)
        assert _read(context) == client.wanted
        session_id, responses = context.finish(_answer(context, hw), now)
        assert _answered(responses) == set(client.wanted)  # a full fetch answers all
        last_hw.clear()
        last_hw.update({p: hw.get(p, 0) for p in client.wanted})
        client.session_id = session_id
        client.epoch = 1
        client.sent = dict(client.wanted)
        return
    changed = {p: o for p, o in client.wanted.items() if client.sent.get(p) != o}
    gone = set(client.sent) - set(client.wanted)
    context = cache.new_context(session_id=client.session_id, epoch=client.epoch,
                                topics=_topics(changed), forgotten=_forgotten(gone),
                                uses_topic_ids=False, privileged=False, now_ms=now)
    if context.error:
        # Evicted: the client starts over with a full fetch, as Kafka clients do.
        assert context.error == ErrorCode.fetch_session_id_not_found
        client.session_id, client.epoch, client.sent = 0, INITIAL_EPOCH, {}
        return
    assert _read(context) == client.wanted  # the broker reads what the client wants
    session_id, responses = context.finish(_answer(context, hw), now)
    added = set(client.wanted) - set(client.sent)
    expected = added | {p for p in client.wanted if hw.get(p, 0) != last_hw.get(p)}
    assert _answered(responses) == expected
    for p in expected:
        last_hw[p] = hw.get(p, 0)
    if not client.wanted:
        assert session_id == 0  # an emptied session is closed
        client.session_id, client.epoch, client.sent = 0, INITIAL_EPOCH, {}
        return
    assert session_id == client.session_id
    client.epoch += 1
    client.sent = dict(client.wanted)
