"""The broker-to-controller channel: a broker that is not the controller asks
the controller for what only it may do, over the Kafka protocol (real etcd,
two real `strom serve` processes). Metadata auto-creation, FindCoordinator
(its internal topic) and producer ids work on either broker; AllocateProducerIds
is a controller API, answered by the controller only and not advertised to
clients. Every wait has a deadline."""

from __future__ import annotations

import datetime
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from kio.schema.allocate_producer_ids.v0.request import AllocateProducerIdsRequest
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.find_coordinator.v4.request import FindCoordinatorRequest
from kio.schema.init_producer_id.v4.request import InitProducerIdRequest
from kio.schema.types import BrokerId
from kio.static.primitive import i8, i16, i32Timedelta, i64

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from tests.cluster.brokers import WAIT
from tests.interop.clients import wait_until
from tests.process import StromProcess
from tests.wire import WireClient, metadata_request


def _request(bootstrap: str, api_key: int, version: int, body: Any) -> Any:
    with WireClient(bootstrap) as client:
        return client.request(api_key, version, body)


def test_metadata_auto_creates_through_the_controller(
        roles: tuple[StromProcess, StromProcess]) -> None:
    controller, other = roles

    def created() -> Any:
        response = _request(other.bootstrap, ApiKey.METADATA, 12, metadata_request("auto-made"))
        (topic,) = response.topics
        # LEADER_NOT_AVAILABLE (retriable) at most while the controller works on it.
        assert topic.error_code in (ErrorCode.none, ErrorCode.leader_not_available)
        return topic if topic.error_code == ErrorCode.none else None

    topic = wait_until(created, WAIT, what="auto-created topic on the non-controller")
    assert len(topic.partitions) == 1
    seen = _request(controller.bootstrap, ApiKey.METADATA, 12, metadata_request("auto-made"))
    assert seen.topics[0].error_code == ErrorCode.none
    assert seen.topics[0].topic_id == topic.topic_id


def test_consumer_group_commits_on_the_non_controller(
        roles: tuple[StromProcess, StromProcess]) -> None:
    _, other = roles
    request = FindCoordinatorRequest(key_type=i8(0), coordinator_keys=("forwarded-group",))

    def found() -> Any:
        response = _request(other.bootstrap, ApiKey.FIND_COORDINATOR, 4, request)
        (coordinator,) = response.coordinators
        assert coordinator.error_code in (ErrorCode.none,
                                          ErrorCode.coordinator_not_available), coordinator
        return coordinator if coordinator.error_code == ErrorCode.none else None

    coordinator = wait_until(found, WAIT, what="group coordinator found on the non-controller")
    assert coordinator.node_id in (1, 2)

    wait_until(lambda: _request(other.bootstrap, ApiKey.METADATA, 12,
                                metadata_request("grouped")).topics[0].error_code
               == ErrorCode.none, WAIT, what="topic grouped")
    consumer = Consumer({"bootstrap.servers": other.bootstrap, "group.id": "forwarded-group",
                         "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition("grouped", 0, 7)], asynchronous=False)
        (committed,) = consumer.committed([TopicPartition("grouped", 0)], timeout=WAIT)
        assert committed.offset == 7
    finally:
        consumer.close()


def test_idempotent_producer_gets_an_id_from_the_non_controller(
        roles: tuple[StromProcess, StromProcess]) -> None:
    controller, other = roles
    request = InitProducerIdRequest(transactional_id=None,
                                    transaction_timeout=i32Timedelta.parse(
                                        datetime.timedelta(seconds=60)),
                                    producer_id=i64(-1), producer_epoch=i16(-1))

    def granted() -> Any:
        response = _request(other.bootstrap, ApiKey.INIT_PRODUCER_ID, 4, request)
        assert response.error_code in (ErrorCode.none,
                                       ErrorCode.coordinator_load_in_progress), response
        return response if response.error_code == ErrorCode.none else None

    first = wait_until(granted, WAIT, what="producer id on the non-controller")
    assert first.producer_id >= 0
    # The controller's own block does not overlap the one it gave the other broker.
    own = wait_until(lambda: _request(controller.bootstrap, ApiKey.INIT_PRODUCER_ID, 4,
                                      request), WAIT)
    assert own.error_code == ErrorCode.none
    assert abs(own.producer_id - first.producer_id) >= 1000


def test_allocate_producer_ids_is_a_controller_api(
        roles: tuple[StromProcess, StromProcess]) -> None:
    controller, other = roles
    versions = _request(other.bootstrap, ApiKey.API_VERSIONS, 3, ApiVersionsRequest(
        client_software_name="strom-tests", client_software_version="0"))
    assert ApiKey.ALLOCATE_PRODUCER_IDS not in {k.api_key for k in versions.api_keys}

    metadata = _request(other.bootstrap, ApiKey.METADATA, 12, metadata_request("unused-x"))
    other_id = next(b.node_id for b in metadata.brokers if b.port == other.port)
    ask = AllocateProducerIdsRequest(broker_id=BrokerId(other_id), broker_epoch=i64(-1))
    refused = _request(other.bootstrap, ApiKey.ALLOCATE_PRODUCER_IDS, 0, ask)
    assert refused.error_code == ErrorCode.not_controller
    block = _request(controller.bootstrap, ApiKey.ALLOCATE_PRODUCER_IDS, 0, ask)
    assert block.error_code == ErrorCode.none
    assert block.producer_id_len == 1000 and block.producer_id_start >= 0
    again = _request(controller.bootstrap, ApiKey.ALLOCATE_PRODUCER_IDS, 0, ask)
    assert again.producer_id_start >= block.producer_id_start + 1000
    stranger = AllocateProducerIdsRequest(broker_id=BrokerId(99), broker_epoch=i64(-1))
    unknown = _request(controller.bootstrap, ApiKey.ALLOCATE_PRODUCER_IDS, 0, stranger)
    assert unknown.error_code == ErrorCode.stale_broker_epoch
