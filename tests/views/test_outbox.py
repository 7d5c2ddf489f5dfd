"""Publishing from a handler: every output exactly once, across crashes and rebuilds,
without broker transactions; and the transactional flag on a cluster without them."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from strom.testing import EmbeddedBroker
from strom.views import (
    Context,
    MemoryStore,
    Publisher,
    SQLiteStore,
    TransactionsUnsupported,
    View,
    ViewFailed,
    ViewStore,
)
from strom.views.kafka import TRANSACTION_APIS, broker_api_versions
from strom.views.outbox import OUTBOX_ID_HEADER, OUTBOX_TABLE, Outbox
from strom.views.publisher import missing_transaction_apis
from tests.views.helpers import Deposited, Noted, create_topic, publish_deposits, registry, unique


class Crash(BaseException):
    pass


@pytest.fixture
def publisher(broker: EmbeddedBroker) -> Iterator[Publisher]:
    with Publisher(broker.bootstrap, registry()) as p:
        yield p


def echo_view(bootstrap: str, source: str, out: str, store: ViewStore, **kw: Any) -> View:
    view = View("echo", bootstrap=bootstrap, topics=[source], registry=registry(),
                store=store, **kw)

    @view.on(Deposited)
    def deposited(event: Deposited, ctx: Context) -> None:
        ctx.put("seen", str(event.n), 1)
        ctx.publish(out, Noted(f"deposit {event.n}"), key=event.account)

    return view


def assert_published_once(broker: EmbeddedBroker, out: str, count: int) -> None:
    records = broker.records(out)
    texts = Counter(r.value for r in records)
    assert len(texts) == count, f"{count - len(texts)} outputs missing"
    assert set(texts.values()) == {1}, "an output was published twice"
    ids = [dict(r.headers)[OUTBOX_ID_HEADER] for r in records]
    assert len(set(ids)) == count


def test_each_output_is_published_once(broker: EmbeddedBroker, publisher: Publisher) -> None:
    source = create_topic(broker.bootstrap, unique("src"))
    out = create_topic(broker.bootstrap, unique("out"))
    publish_deposits(publisher, source, 0, 200)
    store = MemoryStore()
    with echo_view(broker.bootstrap, source, out, store, max_batch=30) as view:
        view.catch_up(timeout=30, published=True)
        with view.snapshot() as snap:
            assert snap.count(OUTBOX_TABLE) == 0
    assert_published_once(broker, out, 200)


@pytest.mark.parametrize("where", ["after_produce", "before_produce"])
def test_crash_around_the_relay_neither_loses_nor_duplicates(
        broker: EmbeddedBroker, publisher: Publisher, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    source = create_topic(broker.bootstrap, unique("src"))
    out = create_topic(broker.bootstrap, unique("out"))
    publish_deposits(publisher, source, 0, 120)
    path = tmp_path / "echo.db"
    store = SQLiteStore(path)
    if where == "after_produce":
        # acknowledged by the cluster, not yet deleted from the outbox: the worst window
        def crash(self: Outbox) -> None:
            raise Crash()
        monkeypatch.setattr(Outbox, "_finish_round", crash)
    else:
        def crash_relay(self: Outbox, wait: float) -> None:
            raise Crash()
        monkeypatch.setattr(Outbox, "relay", crash_relay)
    view = echo_view(broker.bootstrap, source, out, store, max_batch=50)
    view.start()
    with pytest.raises(ViewFailed):
        view.catch_up(timeout=30, published=True)
    view.stop()
    store.close()
    monkeypatch.undo()
    if where == "after_produce":
        assert 0 < len(broker.records(out)) <= 50
    else:
        assert broker.records(out) == []
    store = SQLiteStore(path)
    with store.snapshot() as snap:
        assert snap.count(OUTBOX_TABLE) > 0
    with echo_view(broker.bootstrap, source, out, store) as view:
        view.catch_up(timeout=30, published=True)
    assert_published_once(broker, out, 120)
    store.close()


def test_rebuild_does_not_publish_again(broker: EmbeddedBroker, publisher: Publisher) -> None:
    source = create_topic(broker.bootstrap, unique("src"))
    out = create_topic(broker.bootstrap, unique("out"))
    publish_deposits(publisher, source, 0, 60)
    with echo_view(broker.bootstrap, source, out, MemoryStore()) as view:
        view.catch_up(timeout=30, published=True)
        view.rebuild(timeout=30)
        publish_deposits(publisher, source, 60, 10)
        view.catch_up(timeout=30, published=True)
        with view.snapshot() as snap:
            assert snap.count("seen") == 70
    assert_published_once(broker, out, 70)


def transactions_supported(bootstrap: str) -> bool:
    apis = broker_api_versions(bootstrap)
    return apis is not None and all(key in apis for key in TRANSACTION_APIS)


def read_committed(bootstrap: str, topic: str) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "audit",
                         "enable.partition.eof": True, "isolation.level": "read_committed"})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        values: list[bytes] = []
        done: set[int] = set()
        deadline = time.monotonic() + 20
        while len(done) < len(parts):
            assert time.monotonic() < deadline, "reading the topic took too long"
            for msg in consumer.consume(500, 0.2):
                if msg.error() is None:
                    values.append(msg.value() or b"")
                else:
                    done.add(msg.partition() or 0)
        return values
    finally:
        consumer.close()


def test_the_missing_transaction_apis_are_named() -> None:
    without = {0: (0, 11), 1: (0, 17), 3: (0, 12), 18: (0, 4), 22: (0, 5)}
    assert missing_transaction_apis(without) == [
        "AddPartitionsToTxn", "AddOffsetsToTxn", "EndTxn", "TxnOffsetCommit"]
    assert missing_transaction_apis({**without, 24: (0, 5), 25: (0, 4), 26: (0, 4),
                                     28: (0, 5)}) == []


def test_transactional_publisher(broker: EmbeddedBroker) -> None:
    """Commits and aborts on a cluster with transactions; a clear error naming the
    missing broker feature on one without."""
    topic = create_topic(broker.bootstrap, unique("txn"), partitions=1)
    if not transactions_supported(broker.bootstrap):
        started = time.monotonic()
        with pytest.raises(TransactionsUnsupported, match="AddPartitionsToTxn") as info:
            Publisher(broker.bootstrap, registry(), transactional_id=unique("orders"),
                      request_timeout=10)
        assert isinstance(info.value, NotImplementedError)
        assert time.monotonic() - started < 5
        return
    with Publisher(broker.bootstrap, registry(), transactional_id=unique("orders"),
                   request_timeout=20) as p:
        with p.transaction():
            p.publish_async(topic, Noted("committed"), key="k")
        with pytest.raises(RuntimeError), p.transaction():
            p.publish_async(topic, Noted("aborted"), key="k")
            p.flush(10)
            raise RuntimeError("abort")
        with p.transaction():
            p.publish_async(topic, Noted("committed too"), key="k")
    assert read_committed(broker.bootstrap, topic) == [b'{"text":"committed"}',
                                                       b'{"text":"committed too"}']


def test_transactional_view(broker: EmbeddedBroker, publisher: Publisher) -> None:
    """Outputs in a Kafka transaction with the source offsets; after the store loses
    commits, the gap is replayed without publishing again. On a cluster without
    transactions, the view fails at start with a clear error."""
    source = create_topic(broker.bootstrap, unique("src"))
    out = create_topic(broker.bootstrap, unique("out"))
    store = MemoryStore()
    txn_id = unique("echo")
    if not transactions_supported(broker.bootstrap):
        with echo_view(broker.bootstrap, source, out, store, transactional_id=txn_id) as view:
            with pytest.raises(ViewFailed, match="does not support Kafka transactions") as info:
                view.catch_up(timeout=20)
            assert isinstance(info.value.__cause__, TransactionsUnsupported)
        return
    publish_deposits(publisher, source, 0, 90)
    with echo_view(broker.bootstrap, source, out, store, transactional_id=txn_id,
                   max_batch=20, request_timeout=20) as view:
        view.catch_up(timeout=60)
    # the store loses its commits (say, a restore from an old backup)
    offsets = store.offsets()
    store.clear()
    publish_deposits(publisher, source, 90, 10)
    with echo_view(broker.bootstrap, source, out, store, transactional_id=txn_id,
                   request_timeout=20) as view:
        view.catch_up(timeout=60)
        with view.snapshot() as snap:
            assert snap.count("seen") == 100
    assert offsets and all(o > 0 for o in offsets.values())
    values = read_committed(broker.bootstrap, out)
    assert sorted(values) == sorted({v for v in values}), "an output was published twice"
    assert len(values) == 100


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # kafka-python's imports
def test_publisher_partitions_keys_like_java(
        broker: EmbeddedBroker) -> None:
    from kafka.partitioner.default import murmur2  # type: ignore[import-untyped]

    topic = create_topic(broker.bootstrap, unique("keys"), partitions=5)
    with Publisher(broker.bootstrap, registry()) as p:
        for i in range(20):
            key = f"customer-{i}"
            delivery = p.publish(topic, Noted(key), key=key)
            assert delivery.partition == (murmur2(key.encode()) & 0x7FFFFFFF) % 5
    assert len(broker.records(topic)) == 20
