"""Views against a real strom broker: exactly-once application, catch-up, lag,
snapshots, crashes, rebuild, and a broker that goes away."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strom.testing import EmbeddedBroker
from strom.views import (
    BrokerUnavailable,
    Context,
    MemoryStore,
    Progress,
    Publisher,
    SQLiteStore,
    View,
    ViewFailed,
    ViewState,
    ViewStore,
)
from tests.views.helpers import (
    Deposited,
    Noted,
    create_topic,
    publish_deposits,
    registry,
    unique,
)


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs, nothing is committed."""


@pytest.fixture
def publisher(broker: EmbeddedBroker) -> Iterator[Publisher]:
    with Publisher(broker.bootstrap, registry()) as p:
        yield p


def bank_view(bootstrap: str, topics: list[str], store: ViewStore,
              crash_at: int | None = None, **kwargs: Any) -> View:
    """Counts how often each event was applied ("seen") and keeps balances."""
    view = View("bank", bootstrap=bootstrap, topics=topics, registry=registry(), store=store,
                **kwargs)
    applied = [0]

    @view.on(Deposited)
    def deposited(event: Deposited, ctx: Context) -> None:
        applied[0] += 1
        if crash_at is not None and applied[0] == crash_at:
            raise Crash()
        ctx.put("seen", str(event.n), (ctx.get("seen", str(event.n)) or 0) + 1)
        ctx.put("balance", event.account, (ctx.get("balance", event.account) or 0)
                + event.amount)

    return view


def assert_exactly_once(view_or_store: View | ViewStore, count: int) -> None:
    with view_or_store.snapshot() as snap:
        seen = dict(snap.items("seen"))
        balances = dict(snap.items("balance"))
    assert sorted(int(k) for k in seen) == list(range(count)), "an event was lost"
    assert set(seen.values()) == {1}, "an event was applied twice"
    assert sum(balances.values()) == sum(range(count))


def test_applies_every_event_once_and_commits_offsets(broker: EmbeddedBroker,
                                                      publisher: Publisher) -> None:
    topic = create_topic(broker.bootstrap, unique("deposits"), partitions=3)
    publish_deposits(publisher, topic, 0, 300)
    store = MemoryStore()
    view = bank_view(broker.bootstrap, [topic], store, max_batch=50)
    # Before it starts (a started view may already have applied everything).
    assert view.lag()[(topic, 0)] > 0
    with view:
        progress = view.catch_up(timeout=30)
        assert progress.state is ViewState.LIVE
        assert_exactly_once(view, 300)
        marks = view.high_watermarks()
        assert store.offsets() == marks  # offsets stored with the state
        assert view.lag() == {tp: 0 for tp in marks}
        # live: new events arrive
        publish_deposits(publisher, topic, 300, 20)
        view.catch_up(timeout=30)
        assert_exactly_once(view, 320)


def test_restart_resumes_from_the_offsets_in_the_store(broker: EmbeddedBroker,
                                                       publisher: Publisher,
                                                       tmp_path: Path) -> None:
    topic = create_topic(broker.bootstrap, unique("deposits"))
    publish_deposits(publisher, topic, 0, 100)
    path = tmp_path / "bank.db"
    with bank_view(broker.bootstrap, [topic], SQLiteStore(path)) as view:
        view.catch_up(timeout=30)
    view.store.close()
    publish_deposits(publisher, topic, 100, 50)
    store = SQLiteStore(path)
    with bank_view(broker.bootstrap, [topic], store) as view:
        # the last consistent state is served at once, before catching up
        with view.snapshot() as snap:
            assert snap.count("seen") == 100
        progress = view.catch_up(timeout=30)
        assert progress.applied == 50
        assert_exactly_once(view, 150)
    store.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_crash_mid_batch_never_applies_twice(broker: EmbeddedBroker, publisher: Publisher,
                                             tmp_path: Path, kind: str) -> None:
    topic = create_topic(broker.bootstrap, unique("deposits"))
    total = 400
    publish_deposits(publisher, topic, 0, total)
    store: ViewStore = MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "v.db")
    # Die in the middle of batches, several times, each run getting a little further.
    for crash_at in (37, 101, 64, 150):
        view = bank_view(broker.bootstrap, [topic], store, crash_at=crash_at, max_batch=40)
        view.start()
        with pytest.raises(ViewFailed, match="failed"):
            view.catch_up(timeout=30)
        assert view.state is ViewState.FAILED
        view.stop()
        # what a restarted process finds: only whole batches, with their offsets
        if isinstance(store, MemoryStore):
            store = store.reopen()
        else:
            store.close()
            store = SQLiteStore(tmp_path / "v.db")
        with store.snapshot() as snap:
            seen = dict(snap.items("seen"))
            assert set(seen.values()) <= {1}
            # each partition's offset counts exactly the events applied from it
            assert sum(snap.offsets().values()) == len(seen)
    with bank_view(broker.bootstrap, [topic], store) as view:
        view.catch_up(timeout=30)
        assert_exactly_once(view, total)
    store.close()


def test_queryable_while_restoring_with_progress(broker: EmbeddedBroker,
                                                 publisher: Publisher) -> None:
    topic = create_topic(broker.bootstrap, unique("deposits"), partitions=1)
    publish_deposits(publisher, topic, 0, 2000)
    reports: list[Progress] = []
    view = bank_view(broker.bootstrap, [topic], MemoryStore(), max_batch=100,
                     progress_interval=0.05, on_progress=reports.append)
    inconsistent: list[str] = []
    observed: list[int] = []
    done = threading.Event()

    def query() -> None:
        while not done.is_set():
            with view.snapshot() as snap:
                seen = snap.count("seen")
                offset = snap.offsets().get((topic, 0), 0)
            observed.append(seen)
            if seen != offset:
                inconsistent.append(f"{seen} events but offset {offset}")
            time.sleep(0.001)

    reader = threading.Thread(target=query)
    reader.start()
    slow = view.spec.handlers_by_name[b"Deposited"]

    def slower(event: Deposited, ctx: Context) -> None:
        if event.n % 100 == 0:
            time.sleep(0.01)
        slow(event, ctx)

    view.spec.handlers_by_name[b"Deposited"] = slower
    try:
        with view:
            view.catch_up(timeout=30)
    finally:
        done.set()
        reader.join()
    assert inconsistent == []
    assert observed == sorted(observed)  # state only moves forward
    assert observed[-1] == 2000 and len(set(observed)) > 2
    assert reports and all(r.state is ViewState.RESTORING for r in reports)
    assert "records/s" in str(reports[-1])


def test_topics_created_later_are_picked_up(broker: EmbeddedBroker,
                                            publisher: Publisher) -> None:
    topic = unique("later")
    with bank_view(broker.bootstrap, [topic], MemoryStore(), metadata_interval=0.2) as view:
        view.catch_up(timeout=10)  # nothing to wait for yet
        create_topic(broker.bootstrap, topic, partitions=2)
        publish_deposits(publisher, topic, 0, 30)
        view.catch_up(timeout=30)
        assert_exactly_once(view, 30)


def test_several_topics_tombstones_and_raw_records(broker: EmbeddedBroker,
                                                   publisher: Publisher) -> None:
    deposits = create_topic(broker.bootstrap, unique("deposits"), partitions=1)
    notes = create_topic(broker.bootstrap, unique("notes"), partitions=1)
    publish_deposits(publisher, deposits, 0, 10)
    publisher.publish(notes, Noted("hello"), key="n1")
    publisher.publish(notes, Noted("bye"), key="n2")
    publisher.produce(notes, None, key="n1").result(10)  # tombstone
    publisher.produce(notes, b"not an event", key="raw").result(10)
    view = bank_view(broker.bootstrap, [deposits, notes], MemoryStore())

    @view.on(Noted)
    def noted(event: Noted, ctx: Context) -> None:
        ctx.put("notes", (ctx.key or b"").decode(), event.text)

    @view.on_tombstone(notes)
    def deleted(key: bytes | None, ctx: Context) -> None:
        ctx.delete("notes", (key or b"").decode())

    @view.on_other
    def other(ctx: Context) -> None:
        ctx.put("raw", f"{ctx.topic}@{ctx.offset}", (ctx.value or b"").decode())

    with view:
        view.catch_up(timeout=30)
        with view.snapshot() as snap:
            assert snap.items("notes") == [("n2", "bye")]
            assert snap.items("raw") == [(f"{notes}@3", "not an event")]
        assert_exactly_once(view, 10)


def test_unknown_records_fail_the_view_when_asked(broker: EmbeddedBroker,
                                                  publisher: Publisher) -> None:
    topic = create_topic(broker.bootstrap, unique("mixed"), partitions=1)
    publish_deposits(publisher, topic, 0, 5)
    publisher.publish(topic, Noted("unexpected"), key="x")
    with bank_view(broker.bootstrap, [topic], MemoryStore(), on_unknown="fail") as view:
        with pytest.raises(ViewFailed, match=rf"no handler for {topic}\[0\]@5"):
            view.catch_up(timeout=30)
        with view.snapshot() as snap:  # the batch was rolled back as a whole
            assert snap.count("seen") in (0, 5)


def test_handler_error_names_the_record_and_rolls_back(broker: EmbeddedBroker,
                                                       publisher: Publisher) -> None:
    topic = create_topic(broker.bootstrap, unique("poison"), partitions=1)
    publish_deposits(publisher, topic, 0, 5)
    view = View("poison", bootstrap=broker.bootstrap, topics=[topic], registry=registry(),
                store=MemoryStore())

    @view.on(Deposited)
    def deposited(event: Deposited, ctx: Context) -> None:
        ctx.put("seen", str(event.n), 1)
        if event.n == 3:
            raise ValueError("bad data")

    with view:
        with pytest.raises(ViewFailed, match=rf"{topic}\[0\]@3: ValueError: bad data"):
            view.catch_up(timeout=30)
        assert view.store.offsets() == {} or view.store.offsets()[(topic, 0)] <= 3


def test_rebuild_serves_the_old_state_until_the_new_one_is_complete(
        broker: EmbeddedBroker, publisher: Publisher, tmp_path: Path) -> None:
    topic = create_topic(broker.bootstrap, unique("deposits"))
    publish_deposits(publisher, topic, 0, 500)
    store = SQLiteStore(tmp_path / "bank.db")
    view = bank_view(broker.bootstrap, [topic], store, max_batch=50, progress_interval=0.02)
    during: list[int] = []

    def check_old_state(progress: Progress) -> None:
        with view.snapshot() as snap:
            during.append(snap.count("seen"))

    with view:
        view.catch_up(timeout=30)
        # corrupt the derived state: a rebuild must bring it back from the events
        tx = store.begin()
        tx.put("balance", "acct-0", -1)
        tx.commit()
        slow = view.spec.handlers_by_name[b"Deposited"]

        def slower(event: Deposited, ctx: Context) -> None:
            time.sleep(0.0005)
            slow(event, ctx)

        view.spec.handlers_by_name[b"Deposited"] = slower
        result = view.rebuild(timeout=60, on_progress=check_old_state)
        assert result.applied == 500
        assert during and set(during) == {500}  # old state served, whole, meanwhile
        assert_exactly_once(view, 500)
        publish_deposits(publisher, topic, 500, 10)
        view.catch_up(timeout=30)  # and it runs on after the swap
        assert_exactly_once(view, 510)
    store.close()


def test_catch_up_never_hangs_when_the_broker_is_gone(tmp_path: Path) -> None:
    broker = EmbeddedBroker(tmp_path / "data")
    broker.start()
    try:
        topic = create_topic(broker.bootstrap, unique("deposits"), partitions=1)
        with Publisher(broker.bootstrap, registry()) as publisher:
            publish_deposits(publisher, topic, 0, 20)
        view = bank_view(broker.bootstrap, [topic], MemoryStore(), request_timeout=2)
        with view:
            view.catch_up(timeout=30)
            broker.stop()
            started = time.monotonic()
            with pytest.raises(BrokerUnavailable, match="serving the last consistent state"):
                view.catch_up(timeout=2)
            assert time.monotonic() - started < 5
            assert_exactly_once(view, 20)  # still queryable
            broker.start()
            with Publisher(broker.bootstrap, registry()) as publisher:
                publish_deposits(publisher, topic, 20, 5)
            view.catch_up(timeout=30)
            assert_exactly_once(view, 25)
    finally:
        broker.close()


def test_upcasted_events_reach_the_handler(broker: EmbeddedBroker) -> None:
    from dataclasses import dataclass

    from strom.views import EventRegistry

    @dataclass(frozen=True)
    class DepositedV1:
        account: str
        cents: int

    old_writer = EventRegistry()
    old_writer.register(DepositedV1, "Deposited", version=1)
    topic = create_topic(broker.bootstrap, unique("old"), partitions=1)
    with Publisher(broker.bootstrap, old_writer) as p:
        p.publish(topic, DepositedV1("a", 250), key="a")

    reader = EventRegistry()
    reader.register(Deposited, version=2)

    @reader.upcaster("Deposited", from_version=1)
    def v1_to_v2(old: dict[str, Any]) -> dict[str, Any]:
        return {"account": old["account"], "amount": old["cents"], "n": -1}

    got: list[Deposited] = []
    view = View("upcast", bootstrap=broker.bootstrap, topics=[topic], registry=reader,
                store=MemoryStore())
    view.on(Deposited)(lambda event, ctx: got.append(event))
    with view:
        view.catch_up(timeout=30)
    assert got == [Deposited("a", 250, -1)]
