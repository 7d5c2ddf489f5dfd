"""The broker's Persister (KIP-932): share-partition state in the share coordinator.

Kafka's DefaultStatePersister. Share partitions (broker/share/) and the
group coordinator keep their share state through the `Persister` interface
(coordinator/share/persister.py); this one stores it with the share
coordinator of the share partition's key ("groupId:topicId:partition"),
which is the leader of that key's `__share_group_state` partition:

- this broker: the share coordinator is called directly, no request made;
- another broker (cluster mode): the Initialize/Read/Write/Delete/
  ReadSummary ShareGroupState request goes to it over the peer connection
  (broker/peer_client.py), as Kafka's PersisterStateManager sends it after
  FindCoordinator (key type SHARE) — strom reads the coordinator's node
  from its metadata image, which is what FindCoordinator answers with.

While the coordinator moves, loads or is being created (NOT_COORDINATOR,
COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS, a lost
connection) a call retries with backoff, up to `timeout_s`; other errors
(FENCED_STATE_EPOCH, FENCED_LEADER_EPOCH, UNKNOWN_TOPIC_OR_PARTITION, ...)
are raised at once as the typed KafkaErrors of strom/errors.py.

Where Kafka's share coordinator answers INVALID_REQUEST for reading a share
partition never initialized, `read_state` returns None (the interface's
"never initialized"); its inputs are checked here first, so no other
INVALID_REQUEST can come back from a read.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

from kio.schema.delete_share_group_state.v0 import request as delete_req
from kio.schema.delete_share_group_state.v0.response import DeleteShareGroupStateResponse
from kio.schema.initialize_share_group_state.v0 import request as init_req
from kio.schema.initialize_share_group_state.v0.response import (
    InitializeShareGroupStateResponse,
)
from kio.schema.read_share_group_state.v0 import request as read_req
from kio.schema.read_share_group_state.v0.response import ReadShareGroupStateResponse
from kio.schema.read_share_group_state_summary.v1 import request as summary_req
from kio.schema.read_share_group_state_summary.v1.response import (
    ReadShareGroupStateSummaryResponse,
)
from kio.schema.write_share_group_state.v1 import request as write_req
from kio.schema.write_share_group_state.v1.response import WriteShareGroupStateResponse
from kio.static.primitive import i8, i16, i32, i64
from kio.static.protocol import RequestPayload, ResponsePayload

from strom.cluster.image import BrokerInfo, MetadataImage
from strom.coordinator.share.persister import (
    DeliveryState,
    ShareState,
    ShareStateSummary,
    StateBatch,
)
from strom.coordinator.share.records import ShareKey
from strom.coordinator.share.shard import UninitializedShareStateError, WriteData
from strom.errors import (
    CoordinatorNotAvailableError,
    ErrorCode,
    InvalidRequestError,
    KafkaError,
    error_for_code,
)

if TYPE_CHECKING:
    from strom.broker.coordinators import Coordinators
    from strom.broker.peer_client import PeerClient
    from strom.coordinator.share.service import ShareCoordinator

T = TypeVar("T")
R = TypeVar("R", bound=ResponsePayload)


class _PartitionResult(Protocol):
    @property
    def error_code(self) -> int: ...

    @property
    def error_message(self) -> str | None: ...

#: Errors after which the share coordinator is looked for again and asked again.
_RETRIABLE = frozenset({
    ErrorCode.not_coordinator, ErrorCode.coordinator_not_available,
    ErrorCode.coordinator_load_in_progress, ErrorCode.network_exception,
    ErrorCode.request_timed_out, ErrorCode.not_enough_replicas,
})


class BrokerPersister:
    def __init__(self, coordinators: Coordinators, image: Callable[[], MetadataImage],
                 node_id: int, peers: PeerClient | None, *, timeout_s: float = 30.0,
                 backoff_s: float = 0.02, max_backoff_s: float = 1.0) -> None:
        self._coordinators = coordinators
        self._image = image
        self._node_id = node_id
        self._peers = peers
        self.timeout_s = timeout_s
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s

    # -- the Persister interface --------------------------------------------------------

    async def initialize_state(self, group_id: str, topic_id: uuid.UUID, partition: int,
                               state_epoch: int, start_offset: int) -> None:
        key = _key(group_id, topic_id, partition)

        async def remote(peer: BrokerInfo) -> None:
            request = init_req.InitializeShareGroupStateRequest(
                group_id=group_id, topics=(init_req.InitializeStateData(
                    topic_id=topic_id, partitions=(init_req.PartitionData(
                        partition=i32(partition), state_epoch=i32(state_epoch),
                        start_offset=i64(start_offset)),)),))
            response = await self._send(peer, request, InitializeShareGroupStateResponse)
            _raise(response.results[0].partitions[0])

        await self._call(key, lambda s: s.initialize_state(key, state_epoch, start_offset),
                         remote)

    async def read_state(self, group_id: str, topic_id: uuid.UUID, partition: int,
                         leader_epoch: int) -> ShareState | None:
        key = _key(group_id, topic_id, partition)
        if leader_epoch < 0:
            raise InvalidRequestError("The leader epoch cannot be a negative number.")

        async def local(shares: ShareCoordinator) -> ShareState | None:
            try:
                state = await shares.read_state(key, leader_epoch)
            except UninitializedShareStateError:
                return None
            return ShareState(state.state_epoch, state.leader_epoch, state.start_offset,
                              state.batches, state.delivery_complete_count)

        async def remote(peer: BrokerInfo) -> ShareState | None:
            request = read_req.ReadShareGroupStateRequest(
                group_id=group_id, topics=(read_req.ReadStateData(
                    topic_id=topic_id, partitions=(read_req.PartitionData(
                        partition=i32(partition), leader_epoch=i32(leader_epoch)),)),))
            response = await self._send(peer, request, ReadShareGroupStateResponse)
            result = response.results[0].partitions[0]
            if result.error_code == ErrorCode.invalid_request:
                return None
            _raise(result)
            return ShareState(int(result.state_epoch), leader_epoch, int(result.start_offset),
                              tuple(StateBatch(int(b.first_offset), int(b.last_offset),
                                               DeliveryState(int(b.delivery_state)),
                                               int(b.delivery_count))
                                    for b in result.state_batches))

        return await self._call(key, local, remote)

    async def write_state(self, group_id: str, topic_id: uuid.UUID, partition: int,
                          state: ShareState) -> None:
        key = _key(group_id, topic_id, partition)
        data = WriteData(state.state_epoch, state.leader_epoch, state.start_offset,
                         state.batches, state.delivery_complete_count)

        async def remote(peer: BrokerInfo) -> None:
            request = write_req.WriteShareGroupStateRequest(
                group_id=group_id, topics=(write_req.WriteStateData(
                    topic_id=topic_id, partitions=(write_req.PartitionData(
                        partition=i32(partition), state_epoch=i32(state.state_epoch),
                        leader_epoch=i32(state.leader_epoch),
                        start_offset=i64(state.start_offset),
                        delivery_complete_count=i32(state.delivery_complete_count),
                        state_batches=tuple(write_req.StateBatch(
                            first_offset=i64(b.first_offset), last_offset=i64(b.last_offset),
                            delivery_state=i8(int(b.delivery_state)),
                            delivery_count=i16(b.delivery_count)) for b in state.batches)),)),))
            response = await self._send(peer, request, WriteShareGroupStateResponse)
            _raise(response.results[0].partitions[0])

        await self._call(key, lambda s: s.write_state(key, data), remote)

    async def read_summary(self, group_id: str, topic_id: uuid.UUID, partition: int
                           ) -> ShareStateSummary | None:
        key = _key(group_id, topic_id, partition)

        async def local(shares: ShareCoordinator) -> ShareStateSummary | None:
            state = shares.read_summary(key)
            if state is None:
                return None
            return ShareStateSummary(state.state_epoch, state.leader_epoch, state.start_offset,
                                     state.delivery_complete_count)

        async def remote(peer: BrokerInfo) -> ShareStateSummary | None:
            request = summary_req.ReadShareGroupStateSummaryRequest(
                group_id=group_id, topics=(summary_req.ReadStateSummaryData(
                    topic_id=topic_id, partitions=(summary_req.PartitionData(
                        partition=i32(partition), leader_epoch=i32(-1)),)),))
            response = await self._send(peer, request, ReadShareGroupStateSummaryResponse)
            result = response.results[0].partitions[0]
            _raise(result)
            if (result.start_offset, result.state_epoch, result.leader_epoch) == (-1, 0, 0):
                # Kafka's answer for state never initialized (an initialized one has
                # a state epoch from the group coordinator, or a resolved start offset).
                return None
            return ShareStateSummary(int(result.state_epoch), int(result.leader_epoch),
                                     int(result.start_offset),
                                     int(result.delivery_complete_count))

        return await self._call(key, local, remote)

    async def delete_state(self, group_id: str, topic_id: uuid.UUID, partition: int) -> None:
        key = _key(group_id, topic_id, partition)

        async def remote(peer: BrokerInfo) -> None:
            request = delete_req.DeleteShareGroupStateRequest(
                group_id=group_id, topics=(delete_req.DeleteStateData(
                    topic_id=topic_id, partitions=(delete_req.PartitionData(
                        partition=i32(partition)),)),))
            response = await self._send(peer, request, DeleteShareGroupStateResponse)
            _raise(response.results[0].partitions[0])

        await self._call(key, lambda s: s.delete_state(key), remote)

    # -- routing and retries ------------------------------------------------------------

    async def _call(self, key: ShareKey, local: Callable[[ShareCoordinator], Awaitable[T]],
                    remote: Callable[[BrokerInfo], Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        backoff = self._backoff_s
        while True:
            try:
                shares = self._coordinators.shares
                node = await shares.coordinator_for(key.group_id, key.topic_id, key.partition)
                if node is None:
                    raise CoordinatorNotAvailableError(
                        "the share coordinator has no leader for this key yet")
                if node == self._node_id or self._peers is None:
                    return await local(shares)
                peer = self._image().brokers.get(node)
                if peer is None:
                    raise CoordinatorNotAvailableError(f"broker {node} is not registered")
                return await remote(peer)
            except KafkaError as exc:
                if (exc.code not in _RETRIABLE or loop.time() + backoff > deadline
                        or self._coordinators.closed):
                    raise
            await asyncio.sleep(backoff)  # a retry backoff, as Kafka's persister's
            backoff = min(backoff * 2, self._max_backoff_s)

    async def _send(self, peer: BrokerInfo, request: RequestPayload, response_type: type[R]
                    ) -> R:
        assert self._peers is not None
        return await self._peers.request(peer, request, response_type)


def _key(group_id: str, topic_id: uuid.UUID, partition: int) -> ShareKey:
    if not group_id:
        raise InvalidRequestError("Group id must be non-empty.")
    if partition < 0:
        raise InvalidRequestError("The partition id cannot be a negative number.")
    return ShareKey(group_id, topic_id, partition)


def _raise(result: _PartitionResult) -> None:
    code = int(result.error_code)
    if code != ErrorCode.none:
        raise error_for_code(code, result.error_message or "")
