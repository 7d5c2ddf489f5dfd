"""ShareFetch and ShareAcknowledge through a real broker (raw requests):
acquisition, acknowledgement, redelivery after lock expiry, release when a
session or connection closes, the delivery count limit, long-polling, and
Kafka's error codes for bad input."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.testing import EmbeddedBroker
from tests.broker.raw_client import RawClient
from tests.broker.share.share_client import (
    ACCEPT,
    REJECT,
    RELEASE,
    RENEW,
    ShareClient,
    acquired,
    acquired_offsets,
    batch_offsets,
    make_topic,
    partition_data,
    produce,
)

LOCK_MS = 1000


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(overrides={
        "group.share.record.lock.duration.ms": str(LOCK_MS),
        "group.share.min.record.lock.duration.ms": str(LOCK_MS),
        "group.share.delivery.count.limit": "3",
    }) as b:
        yield b


_names = iter(range(1000))


def fresh(broker: EmbeddedBroker, values: int = 0) -> tuple[str, uuid.UUID, str]:
    """A new topic and group; `values` records produced after the group's
    share partition started (share.auto.offset.reset=latest)."""
    n = next(_names)
    topic, group = f"share-{n}", f"group-{n}"
    topic_id = make_topic(broker, topic)
    starter = ShareClient(broker, group)
    assert partition_data(starter.fetch(topic_id, [0]), 0).error_code == 0
    starter.close()
    if values:
        produce(broker, topic, [f"v{i}".encode() for i in range(values)])
    return topic, topic_id, group


def fetch_until(client: ShareClient, topic_id: uuid.UUID, want: int, timeout: float = 10
                ) -> list[int]:
    """Fetch (long-polling) until `want` offsets were acquired in all."""
    got: list[int] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got += acquired_offsets(client.fetch(topic_id, [0], max_wait_ms=500))
    return got


def test_acquire_acknowledge_and_nothing_left(broker: EmbeddedBroker) -> None:
    _, topic_id, group = fresh(broker, 5)
    a = ShareClient(broker, group)
    first = a.fetch(topic_id, [0], max_wait_ms=2000)
    assert acquired(first) == [(0, 4, 1)]
    assert first.acquisition_lock_timeout.total_seconds() * 1000 == LOCK_MS
    assert batch_offsets(first)[0][0] == 0
    # Another member sees nothing: all five are acquired by the first.
    b = ShareClient(broker, group)
    assert acquired(b.fetch(topic_id, [0])) == []
    ack = a.acknowledge(topic_id, {0: [(0, 4, [ACCEPT])]})
    assert ack.error_code == 0
    assert ack.responses[0].partitions[0].error_code == 0
    # Accepted records never come back, even after the lock would have run out.
    assert acquired(b.fetch(topic_id, [0], max_wait_ms=LOCK_MS + 300)) == []
    share = broker.services.share_partitions.handle((group, topic_id, 0)).share
    assert share.start_offset == 5


def test_lock_expiry_redelivers_to_another_member(broker: EmbeddedBroker) -> None:
    _, topic_id, group = fresh(broker, 3)
    a = ShareClient(broker, group)
    assert acquired(a.fetch(topic_id, [0], max_wait_ms=2000)) == [(0, 2, 1)]
    b = ShareClient(broker, group)
    b.fetch(topic_id, [0])
    # No acknowledgement: once the lock expires (1 s) the records are
    # acquirable again, and the waiting fetch is woken for them.
    again = b.fetch(topic_id, [0], max_wait_ms=5000)
    assert acquired(again) == [(0, 2, 2)]
    # The first member's late acknowledgement is refused.
    late = a.acknowledge(topic_id, {0: [(0, 2, [ACCEPT])]})
    assert late.responses[0].partitions[0].error_code == ErrorCode.invalid_record_state


def test_release_reject_and_delivery_limit(broker: EmbeddedBroker) -> None:
    _, topic_id, group = fresh(broker, 4)
    a = ShareClient(broker, group)
    assert acquired(a.fetch(topic_id, [0], max_wait_ms=2000)) == [(0, 3, 1)]
    # Per-offset types: 0 accepted, 1 released, 2 rejected, 3 released; piggybacked.
    again = a.fetch(topic_id, [0], acks={0: [(0, 3, [ACCEPT, RELEASE, REJECT, RELEASE])]})
    assert partition_data(again).acknowledge_error_code == 0
    assert acquired(again) == [(1, 1, 2), (3, 3, 2)]
    # Released again, and (same request) acquired again: the third delivery,
    # the last one group.share.delivery.count.limit=3 allows.
    third = a.fetch(topic_id, [0], acks={0: [(1, 1, [RELEASE]), (3, 3, [RELEASE])]})
    assert acquired(third) == [(1, 1, 3), (3, 3, 3)]
    a.fetch(topic_id, [0], acks={0: [(1, 1, [RELEASE]), (3, 3, [RELEASE])]})
    assert acquired(a.fetch(topic_id, [0], max_wait_ms=300)) == []
    share = broker.services.share_partitions.handle((group, topic_id, 0)).share
    assert share.start_offset == 4  # all archived or acknowledged


def test_renew_keeps_the_lock(broker: EmbeddedBroker) -> None:
    _, topic_id, group = fresh(broker, 1)
    a = ShareClient(broker, group)
    assert acquired(a.fetch(topic_id, [0], max_wait_ms=2000)) == [(0, 0, 1)]
    b = ShareClient(broker, group)
    b.fetch(topic_id, [0])
    for _ in range(3):  # 3 x 0.6 s > the 1 s lock
        time.sleep(0.6)  # the member "processing": time must pass for a lock to expire
        renewed = a.acknowledge(topic_id, {0: [(0, 0, [RENEW])]}, renew=True)
        assert renewed.responses[0].partitions[0].error_code == 0
        assert acquired(b.fetch(topic_id, [0])) == []
    assert a.acknowledge(topic_id, {0: [(0, 0, [ACCEPT])]}).responses[0].partitions[0] \
        .error_code == 0


def test_session_close_and_disconnect_release(broker: EmbeddedBroker) -> None:
    _, topic_id, group = fresh(broker, 2)
    a = ShareClient(broker, group)
    assert acquired(a.fetch(topic_id, [0], max_wait_ms=2000)) == [(0, 1, 1)]
    closing = a.fetch(topic_id, [], acks={0: [(0, 0, [ACCEPT])]}, epoch=-1)
    assert closing.error_code == 0 and partition_data(closing).acknowledge_error_code == 0
    b = ShareClient(broker, group)
    # Offset 1 came back at once (not after the lock): the session closed.
    assert acquired(b.fetch(topic_id, [0])) == [(1, 1, 2)]
    b.close()  # the connection drops with offset 1 acquired
    c = ShareClient(broker, group)
    deadline = time.monotonic() + 5
    got: list[tuple[int, int, int]] = []
    while not got and time.monotonic() < deadline:
        got = acquired(c.fetch(topic_id, [0], max_wait_ms=200))
    assert got == [(1, 1, 3)]


def test_long_poll_wakes_on_produce(broker: EmbeddedBroker) -> None:
    topic, topic_id, group = fresh(broker)
    a = ShareClient(broker, group)
    a.fetch(topic_id, [0])
    start = time.monotonic()
    correlation_id = a.wire.send_only(78, 2, {
        "group_id": group, "member_id": a.member, "share_session_epoch": a.epoch,
        "max_wait": 10_000, "min_bytes": 1, "max_bytes": 1 << 20, "max_records": 10,
        "batch_size": 10, "is_renew_ack": False, "topics": [], "forgotten_topics_data": []})
    produce(broker, topic, [b"late"])
    response = a.wire.receive(78, 2, correlation_id)
    assert acquired(response) == [(0, 0, 1)]
    assert time.monotonic() - start < 9  # woken by the append, not by max_wait


def test_max_records_and_acquire_modes(broker: EmbeddedBroker) -> None:
    _, topic_id, group = fresh(broker, 6)
    a = ShareClient(broker, group)
    fetch_until(a, topic_id, 0)
    got = a.fetch(topic_id, [0], max_wait_ms=2000, max_records=2)
    offsets = acquired_offsets(got)
    assert offsets[:2] == [0, 1] and len(offsets) <= 6


def test_session_errors(broker: EmbeddedBroker) -> None:
    _, topic_id, group = fresh(broker)
    a = ShareClient(broker, group)
    # A subsequent epoch with no session.
    assert a.fetch(topic_id, [0], epoch=3).error_code == ErrorCode.share_session_not_found
    a.fetch(topic_id, [0])
    assert a.fetch(topic_id, [0], epoch=7).error_code == ErrorCode.invalid_share_session_epoch
    # Acknowledgements on a session-opening fetch.
    assert a.fetch(topic_id, [0], acks={0: [(0, 0, [ACCEPT])]}, epoch=0).error_code \
        == ErrorCode.invalid_request
    # ShareAcknowledge cannot open a session.
    assert a.acknowledge(topic_id, {0: [(0, 0, [ACCEPT])]}, epoch=0).error_code \
        == ErrorCode.invalid_share_session_epoch
    bad = ShareClient(broker, group)
    bad.member = "not-a-uuid"
    response = bad.fetch(topic_id, [0])
    assert response.error_code == ErrorCode.invalid_request
    assert response.error_message == "Invalid member id in the request."


def test_partition_errors(broker: EmbeddedBroker) -> None:
    _, topic_id, group = fresh(broker, 2)
    a = ShareClient(broker, group)
    unknown = uuid.uuid4()
    response = a.fetch(unknown, [0])
    assert partition_data(response).error_code == ErrorCode.unknown_topic_id
    a = ShareClient(broker, group)
    assert partition_data(a.fetch(topic_id, [5]), 5).error_code \
        == ErrorCode.unknown_topic_or_partition
    b = ShareClient(broker, group)
    assert acquired(b.fetch(topic_id, [0], max_wait_ms=2000)) == [(0, 1, 1)]
    # Records it does not hold; a backwards range; an unknown type; overlapping batches.
    cases = [
        ({0: [(5, 6, [ACCEPT])]}, ErrorCode.invalid_record_state),
        # One request naming 2^62 offsets is answered at once, not looped over.
        ({0: [(0, 2**62, [ACCEPT])]}, ErrorCode.invalid_record_state),
        ({0: [(1, 0, [ACCEPT])]}, ErrorCode.invalid_request),
        ({0: [(0, 0, [9])]}, ErrorCode.invalid_request),
        ({0: [(0, 1, [ACCEPT]), (1, 1, [ACCEPT])]}, ErrorCode.invalid_request),
        ({0: [(0, 1, [ACCEPT, ACCEPT, ACCEPT])]}, ErrorCode.invalid_request),
        ({0: [(0, 0, [RENEW])]}, ErrorCode.invalid_request),  # RENEW without is_renew_ack
    ]
    for acks, code in cases:
        answer = b.acknowledge(topic_id, acks)
        assert answer.responses[0].partitions[0].error_code == code, (acks, code)
    # Nothing of a refused acknowledgement applied: both still held by b.
    assert b.acknowledge(topic_id, {0: [(0, 1, [ACCEPT])]}).responses[0].partitions[0] \
        .error_code == 0


def _group_configs(broker: EmbeddedBroker, group: str, configs: dict[str, str]) -> None:
    with RawClient(broker.bootstrap) as client:
        answer = client.send(ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, {
            "resources": [{"resource_type": 32, "resource_name": group, "configs": [
                {"name": k, "config_operation": 0, "value": v} for k, v in configs.items()]}],
            "validate_only": False})
        assert [r.error_code for r in answer.responses] == [0], answer


def test_group_configs_apply(broker: EmbeddedBroker) -> None:
    """share.auto.offset.reset=earliest delivers what was produced before the
    share partition started; share.delivery.count.limit=2 archives after two
    deliveries; share.renew.acknowledge.enable=false refuses RENEW."""
    n = next(_names)
    topic, group = f"share-{n}", f"group-{n}"
    topic_id = make_topic(broker, topic)
    produce(broker, topic, [b"early"])
    _group_configs(broker, group, {"share.auto.offset.reset": "earliest",
                                   "share.delivery.count.limit": "2",
                                   "share.renew.acknowledge.enable": "false"})
    a = ShareClient(broker, group)
    assert acquired(a.fetch(topic_id, [0], max_wait_ms=2000)) == [(0, 0, 1)]
    renew = a.acknowledge(topic_id, {0: [(0, 0, [RENEW])]}, renew=True)
    assert renew.responses[0].partitions[0].error_code == ErrorCode.invalid_request
    again = a.fetch(topic_id, [0], acks={0: [(0, 0, [RELEASE])]})
    assert acquired(again) == [(0, 0, 2)]
    a.fetch(topic_id, [0], acks={0: [(0, 0, [RELEASE])]})
    share = broker.services.share_partitions.handle((group, topic_id, 0)).share
    assert share.start_offset == 1  # archived after its second delivery


def _transactions(broker: EmbeddedBroker, topic: str) -> None:
    """Offsets 0-1 aborted (marker 2), 3-4 committed (marker 5)."""
    producer = Producer({"bootstrap.servers": broker.bootstrap,
                         "transactional.id": f"tx-{topic}", "linger.ms": 0})
    producer.init_transactions(30)
    for commit in (False, True):
        producer.begin_transaction()
        for value in (b"a", b"b"):
            producer.produce(topic, value=value, partition=0)
        producer.flush(30)
        if commit:
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)


@pytest.mark.parametrize("isolation, expected", [
    ("read_committed", [(3, 4, 1)]),
    ("read_uncommitted", [(0, 1, 1), (3, 4, 1)]),
])
def test_isolation_level(broker: EmbeddedBroker, isolation: str,
                         expected: list[tuple[int, int, int]]) -> None:
    """Control records are never delivered; under read_committed neither are
    aborted ones: both are archived, so the SPSO passes them."""
    n = next(_names)
    topic, group = f"share-{n}", f"group-{n}"
    topic_id = make_topic(broker, topic)
    _transactions(broker, topic)
    _group_configs(broker, group, {"share.auto.offset.reset": "earliest",
                                   "share.isolation.level": isolation})
    a = ShareClient(broker, group)
    got = a.fetch(topic_id, [0], max_wait_ms=2000)
    assert acquired(got) == expected
    a.acknowledge(topic_id, {0: [(f, la, [ACCEPT]) for f, la, _ in expected]})
    share = broker.services.share_partitions.handle((group, topic_id, 0)).share
    assert share.start_offset == 6


@pytest.mark.parametrize("reset, expected", [
    ("by_duration:PT1H", [(0, 1, 1)]),  # both records are younger than an hour
    ("latest", []),
])
def test_auto_offset_reset(broker: EmbeddedBroker, reset: str,
                           expected: list[tuple[int, int, int]]) -> None:
    n = next(_names)
    topic, group = f"share-{n}", f"group-{n}"
    topic_id = make_topic(broker, topic)
    produce(broker, topic, [b"x", b"y"])
    _group_configs(broker, group, {"share.auto.offset.reset": reset})
    a = ShareClient(broker, group)
    assert acquired(a.fetch(topic_id, [0], max_wait_ms=300)) == expected


def test_deleted_topic_is_forgotten(broker: EmbeddedBroker) -> None:
    topic, topic_id, group = fresh(broker)
    member = ShareClient(broker, group)  # a session: the group is not empty
    member.fetch(topic_id, [0])
    shares = broker.services.share_partitions
    assert shares.handle((group, topic_id, 0)) is not None
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.delete_topics([topic])[topic].result(30)
    deadline = time.monotonic() + 10
    while shares.handle((group, topic_id, 0)) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert shares.handle((group, topic_id, 0)) is None


def test_version_1(broker: EmbeddedBroker) -> None:
    """v1 (no acquire mode, no renew): fetch, piggybacked and standalone acks."""
    _, topic_id, group = fresh(broker, 3)
    a = ShareClient(broker, group, version=1)
    assert acquired(a.fetch(topic_id, [0], max_wait_ms=2000)) == [(0, 2, 1)]
    piggybacked = a.fetch(topic_id, [0], acks={0: [(0, 0, [ACCEPT])]})
    assert partition_data(piggybacked).acknowledge_error_code == 0
    ack = a.acknowledge(topic_id, {0: [(1, 2, [ACCEPT])]})
    assert ack.responses[0].partitions[0].error_code == 0
    renew = a.acknowledge(topic_id, {0: [(1, 1, [RENEW])]})
    assert renew.responses[0].partitions[0].error_code == ErrorCode.invalid_request


def test_empty_group_reloads_altered_offsets(broker: EmbeddedBroker) -> None:
    """Once no member of the group has a session here, its share partitions
    are dropped from memory (after their state is written), so a start
    offset reset by AlterShareGroupOffsets is what the next member gets."""
    topic, topic_id, group = fresh(broker, 3)
    a = ShareClient(broker, group)
    assert acquired(a.fetch(topic_id, [0], max_wait_ms=2000)) == [(0, 2, 1)]
    closing = a.fetch(topic_id, [], acks={0: [(0, 2, [ACCEPT])]}, epoch=-1)
    assert partition_data(closing).acknowledge_error_code == 0
    shares = broker.services.share_partitions
    deadline = time.monotonic() + 10
    while shares.handle((group, topic_id, 0)) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert shares.handle((group, topic_id, 0)) is None
    with RawClient(broker.bootstrap) as admin:
        # The group coordinator starts on first use: retriable errors until then.
        admin.send(ApiKey.FIND_COORDINATOR, 4, {"key_type": 0, "coordinator_keys": [group]})
        deadline = time.monotonic() + 15
        while True:
            altered = admin.send(ApiKey.ALTER_SHARE_GROUP_OFFSETS, 0, {
                "group_id": group, "topics": [{"topic_name": topic, "partitions": [
                    {"partition_index": 0, "start_offset": 1}]}]})
            if altered.error_code == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert [p.error_code for t in altered.responses for p in t.partitions] == [0], altered
    b = ShareClient(broker, group)
    assert acquired(b.fetch(topic_id, [0], max_wait_ms=2000)) == [(1, 2, 1)]
