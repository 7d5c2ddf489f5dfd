"""Incremental fetch sessions (KIP-227) through a real broker: raw Fetch
requests that create, use and break a session, and a consumer over 200
partitions. After the first full fetch, an idle incremental fetch answers
no partition at all, where a sessionless one repeats every partition."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kio.serial import entity_reader

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey, response_class, response_header_version
from strom.protocol.varint import read_uvarint
from strom.testing import EmbeddedBroker
from tests.broker.raw_client import RawClient
from tests.security.test_quotas_admin import alter_quotas, entry
from tests.wire import WireClient

PARTITIONS = 200


@pytest.fixture(scope="module")
def loaded() -> Iterator[tuple[EmbeddedBroker, str]]:
    """A broker with a 200-partition topic holding one record per partition."""
    with EmbeddedBroker() as broker:
        topic = "sessions"
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)
        _produce(broker.bootstrap, topic, range(PARTITIONS))
        yield broker, topic


def _produce(bootstrap: str, topic: str, partitions: range | list[int]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for p in partitions:
        producer.produce(topic, value=f"v{p}".encode(), partition=p)
    assert producer.flush(30) == 0


def _fetch(client: RawClient, session_id: int, epoch: int,
           offsets: dict[int, int], topic: str, *, version: int = 12,
           topic_id: uuid.UUID | None = None, forget: list[int] | None = None,
           max_wait_ms: int = 0, on_sent: Callable[[], None] | None = None,
           ) -> tuple[Any, int]:
    """One Fetch; the response and its frame's size in bytes."""
    ident: dict[str, Any] = {"topic_id": topic_id} if version >= 13 else {"topic": topic}
    body = {
        "replica_id": -1, "max_wait": max_wait_ms, "min_bytes": 1 if max_wait_ms else 0,
        "max_bytes": 50 << 20,
        "isolation_level": 0, "session_id": session_id, "session_epoch": epoch,
        "topics": [{**ident, "partitions": [
            {"partition": p, "fetch_offset": o, "partition_max_bytes": 1 << 20}
            for p, o in offsets.items()]}] if offsets else [],
        "forgotten_topics_data": [{**ident, "partitions": forget}] if forget else [],
        "rack_id": "",
    }
    correlation_id = client.send_only(ApiKey.FETCH, version, body)
    if on_sent is not None:
        on_sent()
    frame = client.receive_frame()
    response = _decode(version, correlation_id, frame)
    return response, len(frame) + 4


def _decode(version: int, correlation_id: int, frame: bytes) -> Any:
    assert int.from_bytes(frame[:4], "big") == correlation_id
    offset = 4
    if response_header_version(ApiKey.FETCH, version) >= 1:
        tags, offset = read_uvarint(frame, offset)
        assert tags == 0
    response, _ = entity_reader(response_class(ApiKey.FETCH, version))(memoryview(frame), offset)
    return response


def _answered(response: Any) -> dict[int, int]:
    """Partition -> bytes of records, for every partition in the response."""
    return {p.partition_index: len(p.records or b"") for t in response.responses
            for p in t.partitions}


def test_incremental_fetches_answer_only_changes(loaded: tuple[EmbeddedBroker, str]) -> None:
    broker, topic = loaded
    everything = {p: 0 for p in range(PARTITIONS)}
    with RawClient(broker.bootstrap) as client:
        sessionless, _ = _fetch(client, 0, -1, everything, topic)
        assert sessionless.session_id == 0
        full, _ = _fetch(client, 0, 0, everything, topic)
        assert full.error_code == 0 and full.session_id != 0
        session = full.session_id
        assert len(_answered(full)) == PARTITIONS and all(_answered(full).values())
        # The client moves every fetch offset past the record it got: nothing
        # changed on the broker's side, so no partition is answered.
        moved, _ = _fetch(client, session, 1, {p: 1 for p in range(PARTITIONS)}, topic)
        assert moved.error_code == 0 and moved.session_id == session
        assert _answered(moved) == {}
        _produce(broker.bootstrap, topic, [7, 150])
        changed, _ = _fetch(client, session, 2, {}, topic)
        answered = _answered(changed)
        assert set(answered) == {7, 150} and all(answered.values())
        # Forgetting partitions: they are no longer read.
        _produce(broker.bootstrap, topic, [8, 9])
        forgot, _ = _fetch(client, session, 3, {}, topic, forget=[8])
        assert set(_answered(forgot)) == {7, 150, 9}  # 7, 150: the session's offsets are 1
        # Moved offsets with nothing new: still nothing to answer.
        _fetch(client, session, 4, {7: 2, 150: 2, 9: 2}, topic)
        idle, _ = _fetch(client, session, 5, {}, topic)
        assert _answered(idle) == {}
        # Closing (epoch -1) ends the session: its id is unknown afterwards.
        closed, _ = _fetch(client, session, -1, {0: 0}, topic)
        assert closed.session_id == 0 and set(_answered(closed)) == {0}
        gone, _ = _fetch(client, session, 6, {}, topic)
        assert gone.error_code == ErrorCode.fetch_session_id_not_found


def test_idle_incremental_fetch_is_small(loaded: tuple[EmbeddedBroker, str]) -> None:
    broker, topic = loaded
    # Offsets at the log end: an idle consumer.
    ends = {p: 1 for p in range(PARTITIONS) if p not in (7, 8, 9, 150)}
    with RawClient(broker.bootstrap) as client:
        _, sessionless_bytes = _fetch(client, 0, -1, ends, topic)
        full, _ = _fetch(client, 0, 0, ends, topic)
        idle, session_bytes = _fetch(client, full.session_id, 1, {}, topic)
        assert _answered(idle) == {}
    # 200 partitions of ~40 bytes each, against the response's fixed frame.
    assert sessionless_bytes > 30 * PARTITIONS
    assert session_bytes < 40, session_bytes


def test_session_errors(loaded: tuple[EmbeddedBroker, str]) -> None:
    broker, topic = loaded
    with RawClient(broker.bootstrap) as client:
        unknown, _ = _fetch(client, 123456, 1, {}, topic)
        assert unknown.error_code == ErrorCode.fetch_session_id_not_found
        assert unknown.session_id == 0 and list(unknown.responses) == []
        full, _ = _fetch(client, 0, 0, {0: 0}, topic)
        wrong, _ = _fetch(client, full.session_id, 2, {}, topic)
        assert wrong.error_code == ErrorCode.invalid_fetch_session_epoch
        # A session of v12 (topic names) used by a v13+ request (topic ids).
        by_id, _ = _fetch(client, full.session_id, 1, {}, topic, version=16)
        assert by_id.error_code == ErrorCode.fetch_session_topic_id_error
        still, _ = _fetch(client, full.session_id, 1, {}, topic)
        assert still.error_code == 0  # errors do not advance the epoch


def test_session_by_topic_id(loaded: tuple[EmbeddedBroker, str]) -> None:
    broker, topic = loaded
    with RawClient(broker.bootstrap) as client:
        metadata = client.send(ApiKey.METADATA, 12, {
            "topics": [{"name": topic, "topic_id": uuid.UUID(int=0)}],
            "allow_auto_topic_creation": False, "include_topic_authorized_operations": False})
        topic_id = metadata.topics[0].topic_id
        full, _ = _fetch(client, 0, 0, {0: 1, 1: 1}, topic, version=16, topic_id=topic_id)
        assert full.session_id != 0 and set(_answered(full)) == {0, 1}
        _produce(broker.bootstrap, topic, [1])
        changed, _ = _fetch(client, full.session_id, 1, {}, topic, version=16,
                            topic_id=topic_id)
        assert set(_answered(changed)) == {1}
        assert changed.responses[0].topic_id == topic_id


def test_consumer_over_200_partitions(loaded: tuple[EmbeddedBroker, str]) -> None:
    broker, topic = loaded
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "sessions",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 50})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        seen: set[int] = set()
        for _ in range(200):  # bounded: at most 200 polls of 0.5 s
            for message in consumer.consume(1000, timeout=0.5):
                assert message.error() is None, message.error()
                seen.add(message.partition())
            if len(seen) == PARTITIONS:
                break
        assert len(seen) == PARTITIONS
    finally:
        consumer.close()


def test_throttled_fetch_keeps_its_session(loaded: tuple[EmbeddedBroker, str]) -> None:
    """A fetch over consumer_byte_rate is answered empty (Kafka's throttled
    response) with its session id; the next incremental fetch (on another
    connection: the throttled one is muted) repeats every partition, since
    the client saw nothing of the dropped answer."""
    broker, topic = loaded
    client_id = "throttled-session"
    with WireClient(broker.bootstrap) as admin:
        assert alter_quotas(admin, entry({"consumer_byte_rate": 1.0}, client_id=client_id)) \
            == [(ErrorCode.none, None)]
    try:
        # Partition 20 has a record to read; 21-29 are read at their end.
        offsets = {20: 0, **{p: 1 for p in range(21, 30)}}
        with RawClient(broker.bootstrap, client_id=client_id) as client:
            full, _ = _fetch(client, 0, 0, offsets, topic)
        assert full.throttle_time.total_seconds() > 0 and list(full.responses) == []
        assert full.session_id != 0
        with RawClient(broker.bootstrap) as client:
            repeated, _ = _fetch(client, full.session_id, 1, {}, topic)
        assert set(_answered(repeated)) == set(offsets)
    finally:
        with WireClient(broker.bootstrap) as admin:
            alter_quotas(admin, entry({"consumer_byte_rate": None}, client_id=client_id))


def test_incremental_fetch_long_polls_on_session_partitions(
        loaded: tuple[EmbeddedBroker, str]) -> None:
    """An incremental fetch naming no partition still waits (max_wait,
    min_bytes) on the session's partitions and answers when one is appended to."""
    broker, topic = loaded
    with RawClient(broker.bootstrap) as client:
        full, _ = _fetch(client, 0, 0, {40: 1, 41: 1}, topic)
        waited, _ = _fetch(client, full.session_id, 1, {}, topic, max_wait_ms=10_000,
                           on_sent=lambda: _produce(broker.bootstrap, topic, [41]))
    answered = _answered(waited)
    assert set(answered) == {41} and answered[41] > 0
