"""Raw *ShareGroupState requests (KIP-932) for the share coordinator's tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from kio.schema.delete_share_group_state.v0 import request as delete_req
from kio.schema.find_coordinator.v6.request import FindCoordinatorRequest
from kio.schema.initialize_share_group_state.v0 import request as init_req
from kio.schema.read_share_group_state.v0 import request as read_req
from kio.schema.read_share_group_state_summary.v1 import request as summary_req
from kio.schema.write_share_group_state.v1 import request as write_req

from strom.coordinator.share import coordinator_key
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from tests.wire import WireClient, metadata_request


def topic_id(client: WireClient, topic: str) -> uuid.UUID:
    response = client.request(ApiKey.METADATA, 12, metadata_request(topic))
    assert response.topics[0].error_code == ErrorCode.none
    return uuid.UUID(str(response.topics[0].topic_id))


def initialize(client: WireClient, group: str, topic_id: uuid.UUID, partition: int,
                state_epoch: int, start_offset: int) -> Any:
    r = client.request(ApiKey.INITIALIZE_SHARE_GROUP_STATE, 0,
                       init_req.InitializeShareGroupStateRequest(
                           group_id=group, topics=(init_req.InitializeStateData(
                               topic_id=topic_id, partitions=(init_req.PartitionData(
                                   partition=partition, state_epoch=state_epoch,
                                   start_offset=start_offset),)),)))
    return r.results[0].partitions[0]


def write(client: WireClient, group: str, topic_id: uuid.UUID, state_epoch: int,
           leader_epoch: int, start_offset: int,
           batches: tuple[tuple[int, int, int, int], ...]) -> Any:
    r = client.request(ApiKey.WRITE_SHARE_GROUP_STATE, 1,
                       write_req.WriteShareGroupStateRequest(
                           group_id=group, topics=(write_req.WriteStateData(
                               topic_id=topic_id, partitions=(write_req.PartitionData(
                                   partition=0, state_epoch=state_epoch,
                                   leader_epoch=leader_epoch, start_offset=start_offset,
                                   delivery_complete_count=-1,
                                   state_batches=tuple(write_req.StateBatch(
                                       first_offset=f, last_offset=la, delivery_state=s,
                                       delivery_count=c) for f, la, s, c in batches)),)),)))
    return r.results[0].partitions[0]


def read(client: WireClient, group: str, topic_id: uuid.UUID, leader_epoch: int) -> Any:
    r = client.request(ApiKey.READ_SHARE_GROUP_STATE, 0, read_req.ReadShareGroupStateRequest(
        group_id=group, topics=(read_req.ReadStateData(topic_id=topic_id, partitions=(
            read_req.PartitionData(partition=0, leader_epoch=leader_epoch),)),)))
    return r.results[0].partitions[0]


def summary(client: WireClient, group: str, topic_id: uuid.UUID) -> Any:
    r = client.request(ApiKey.READ_SHARE_GROUP_STATE_SUMMARY, 1,
                       summary_req.ReadShareGroupStateSummaryRequest(
                           group_id=group, topics=(summary_req.ReadStateSummaryData(
                               topic_id=topic_id, partitions=(summary_req.PartitionData(
                                   partition=0, leader_epoch=0),)),)))
    return r.results[0].partitions[0]


def delete(client: WireClient, group: str, topic_id: uuid.UUID) -> Any:
    r = client.request(ApiKey.DELETE_SHARE_GROUP_STATE, 0,
                       delete_req.DeleteShareGroupStateRequest(
                           group_id=group, topics=(delete_req.DeleteStateData(
                               topic_id=topic_id, partitions=(delete_req.PartitionData(
                                   partition=0),)),)))
    return r.results[0].partitions[0]


def find_coordinator(client: WireClient, group: str, topic_id: uuid.UUID,
                     partition: int = 0) -> Any:
    """FindCoordinator v6 key type SHARE, as a broker's persister sends it first
    (it creates `__share_group_state` when missing)."""
    key = coordinator_key(group, topic_id, partition)
    r = client.request(ApiKey.FIND_COORDINATOR, 6, FindCoordinatorRequest(
        key_type=2, coordinator_keys=(key,)))
    return r.coordinators[0]


RETRIABLE = {ErrorCode.coordinator_load_in_progress, ErrorCode.not_coordinator,
             ErrorCode.coordinator_not_available}


def until_served(call: Callable[[], Any], timeout: float = 30) -> Any:
    """`call()`'s partition result once the share coordinator serves it (the
    state topic's partitions load after they are created or on restart)."""
    deadline = time.monotonic() + timeout
    while True:
        result = call()
        if result.error_code not in RETRIABLE:
            return result
        assert time.monotonic() < deadline, f"still {result.error_code!r}"
        time.sleep(0.02)  # a coordinator loading its partition: no event to wait on
