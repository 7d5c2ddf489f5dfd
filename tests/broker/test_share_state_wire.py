"""The share coordinator over the wire (KIP-932): FindCoordinator key type
SHARE, the five *ShareGroupState APIs with Kafka 4.4's errors, the
`__share_group_state` topic as Kafka creates it, and the broker's Persister."""

from __future__ import annotations

import uuid

import pytest
from kio.schema.find_coordinator.v6.request import FindCoordinatorRequest

from strom.coordinator.share import SHARE_GROUP_STATE_TOPIC, coordinator_key
from strom.coordinator.share.persister import DeliveryState, ShareState, StateBatch
from strom.coordinator.share.records import ShareKey
from strom.errors import CoordinatorNotAvailableError, ErrorCode, FencedStateEpochError
from strom.protocol.api import ApiKey, request_class
from strom.protocol.messages import build
from strom.testing import EmbeddedBroker
from tests.broker import share_state_client as api
from tests.interop.clients import wait_until
from tests.wire import WireClient


def test_find_coordinator_share_key_creates_the_state_topic(broker: EmbeddedBroker,
                                                            topic_name: str) -> None:
    with WireClient(broker.bootstrap) as client:
        topic_id = api.topic_id(client, topic_name)
        key = coordinator_key("g", topic_id, 0)
        r = client.request(ApiKey.FIND_COORDINATOR, 6, FindCoordinatorRequest(
            key_type=2, coordinator_keys=(key, "not-a-share-key")))
        found, bad = r.coordinators
        assert (found.error_code, found.node_id, found.port) == (
            ErrorCode.none, broker.services.node_id, broker.port)
        assert bad.error_code == ErrorCode.invalid_request
    topic = broker.services.image.topics[SHARE_GROUP_STATE_TOPIC]
    assert len(topic.partitions) == 1  # the test-sized default; Kafka's is 50
    # Kafka's: never compacted nor expired, pruned by the coordinator.
    assert topic.configs["cleanup.policy"] in ("delete", ["delete"])
    assert topic.configs["retention.ms"] in (-1, "-1")


def test_state_round_trip_and_kafkas_errors(broker: EmbeddedBroker, topic_name: str) -> None:
    group = f"g-{topic_name}"
    with WireClient(broker.bootstrap) as client:
        topic_id = api.topic_id(client, topic_name)
        assert api.find_coordinator(client, group, topic_id).error_code == ErrorCode.none
        api.until_served(lambda: api.summary(client, group, topic_id))
        # Never initialized: read is INVALID_REQUEST, summary says -1, as Kafka 4.4.
        assert api.read(client, group, topic_id, 0).error_code == ErrorCode.invalid_request
        assert api.summary(client, group, topic_id).start_offset == -1
        assert api.write(client, group, topic_id, 0, 0, 0, ()).error_code == \
            ErrorCode.invalid_request

        assert api.initialize(client, group, topic_id, 0, 1, -1).error_code == ErrorCode.none
        assert api.write(client, group, topic_id, 1, 5, 3,
                      ((3, 4, 2, 1), (5, 9, 0, 1))).error_code == ErrorCode.none
        read = api.read(client, group, topic_id, 5)
        assert (read.error_code, read.state_epoch, read.start_offset) == (ErrorCode.none, 1, 3)
        assert [(b.first_offset, b.last_offset, b.delivery_state, b.delivery_count)
                for b in read.state_batches] == [(3, 4, 2, 1), (5, 9, 0, 1)]
        summary = api.summary(client, group, topic_id)
        assert (summary.state_epoch, summary.leader_epoch, summary.start_offset) == (1, 5, 3)

        # Fencing: an older leader, an older state epoch.
        assert api.write(client, group, topic_id, 1, 4, -1, ()).error_code == \
            ErrorCode.fenced_leader_epoch
        assert api.read(client, group, topic_id, 4).error_code == ErrorCode.fenced_leader_epoch
        assert api.initialize(client, group, topic_id, 0, 0, 0).error_code == \
            ErrorCode.fenced_state_epoch
        # Bad input: negative epochs, an unknown topic, an empty group id.
        assert api.read(client, group, topic_id, -1).error_code == ErrorCode.invalid_request
        assert api.write(client, group, topic_id, -1, 5, 0, ()).error_code == \
            ErrorCode.invalid_request
        assert api.initialize(client, group, uuid.uuid4(), 0, 1, 0).error_code == \
            ErrorCode.unknown_topic_or_partition
        assert api.initialize(client, group, topic_id, 7, 1, 0).error_code == \
            ErrorCode.unknown_topic_or_partition
        # An empty group id: an empty answer, as Kafka's share coordinator gives.
        empty = client.request(ApiKey.INITIALIZE_SHARE_GROUP_STATE, 0, build(
            request_class(ApiKey.INITIALIZE_SHARE_GROUP_STATE, 0), {"group_id": "", "topics": [
                {"topic_id": topic_id, "partitions": [
                    {"partition": 0, "state_epoch": 1, "start_offset": 0}]}]}))
        assert empty.results == ()

        assert api.delete(client, group, topic_id).error_code == ErrorCode.none
        assert api.summary(client, group, topic_id).start_offset == -1
        assert api.read(client, group, topic_id, 5).error_code == ErrorCode.invalid_request


def test_broker_persister(broker: EmbeddedBroker, topic_name: str) -> None:
    """What S2's share partitions and S1's group coordinator call."""
    group = f"p-{topic_name}"
    persister = broker.services.coordinators.persister
    with WireClient(broker.bootstrap) as client:
        topic_id = api.topic_id(client, topic_name)
    assert broker.run(persister.read_state(group, topic_id, 0, 0)) is None
    assert broker.run(persister.read_summary(group, topic_id, 0)) is None
    broker.run(persister.initialize_state(group, topic_id, 0, 2, -1))
    state = broker.run(persister.read_state(group, topic_id, 0, 0))
    assert state == ShareState(2, 0, -1, ())
    batches = (StateBatch(0, 4, DeliveryState.ACKNOWLEDGED, 1),
               StateBatch(5, 5, DeliveryState.AVAILABLE, 2))
    broker.run(persister.write_state(group, topic_id, 0, ShareState(2, 0, 0, batches)))
    assert broker.run(persister.read_state(group, topic_id, 0, 0)) == \
        ShareState(2, 0, 0, batches)
    summary = broker.run(persister.read_summary(group, topic_id, 0))
    assert (summary.state_epoch, summary.start_offset) == (2, 0)
    with pytest.raises(FencedStateEpochError):
        broker.run(persister.write_state(group, topic_id, 0, ShareState(1, 0, 0, ())))
    broker.run(persister.delete_state(group, topic_id, 0))
    assert broker.run(persister.read_summary(group, topic_id, 0)) is None


def test_deleted_topic_state_is_forgotten(broker: EmbeddedBroker, topic_name: str) -> None:
    """Kafka's maybeCleanupShareState: a deleted topic's share state is tombstoned."""
    group = f"d-{topic_name}"
    shares = broker.services.coordinators.shares
    with WireClient(broker.bootstrap) as client:
        topic_id = api.topic_id(client, topic_name)
        assert api.find_coordinator(client, group, topic_id).error_code == ErrorCode.none
        assert api.until_served(lambda: api.initialize(
            client, group, topic_id, 0, 1, 0)).error_code == ErrorCode.none
        key = ShareKey(group, topic_id, 0)
        partition = shares.partition_for(group, topic_id, 0)

        async def stored() -> bool:
            return shares.runtime.read(partition, lambda s: key in s.states)
        assert broker.run(stored())
        deleted = client.request(ApiKey.DELETE_TOPICS, 6, build(
            request_class(ApiKey.DELETE_TOPICS, 6),
            {"topics": [{"name": topic_name, "topic_id": None}], "timeout": 5000}))
        assert deleted.responses[0].error_code == ErrorCode.none
    wait_until(lambda: not broker.run(stored()), 10, what="the state to be forgotten")


def test_persister_stops_retrying_at_shutdown(fresh_broker: EmbeddedBroker) -> None:
    """Once the broker shuts its coordinators down, a Persister call fails at once
    (COORDINATOR_NOT_AVAILABLE) instead of retrying for its 30 s timeout."""
    persister = fresh_broker.services.coordinators.persister
    fresh_broker.run(fresh_broker.services.coordinators.stop())
    with pytest.raises(CoordinatorNotAvailableError):
        fresh_broker.run(persister.read_summary("g", uuid.uuid4(), 0), timeout=10)
