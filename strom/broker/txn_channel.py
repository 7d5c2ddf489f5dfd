"""Transactions across brokers: what a transaction coordinator and a partition
leader ask of each other when they are not the same broker.

- The coordinator writes a transaction's COMMIT/ABORT markers to every
  partition of it; a partition led by another broker gets them in a
  WriteTxnMarkers request to its leader (Kafka's TransactionMarkerChannelManager),
  answered once they are committed there. Markers of one transaction for one
  leader go in one request.
- A leader appending a transactional batch that would open a transaction on a
  partition checks with the producer's coordinator that the partition belongs
  to its ongoing transaction (KIP-890); with the coordinator on another broker
  that is an AddPartitionsToTxn v5 request, `verify_only` for transaction
  version 1, adding the partitions for version 2 (Kafka's AddPartitionsToTxnManager).

A single node never needs either (`peers` is None): everything is local, and
the two requests' schemas are imported by the first one sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from kio.schema.types import ProducerId, TopicName, TransactionalId
from kio.static.primitive import i16, i32

from strom.cluster.image import BrokerInfo, MetadataImage
from strom.errors import ErrorCode, KafkaError, NotLeaderOrFollowerError

if TYPE_CHECKING:
    from strom.broker.peer_client import PeerClient

TopicPartition = tuple[str, int]


def _by_topic(partitions: Iterable[TopicPartition]) -> dict[str, list[int]]:
    topics: dict[str, list[int]] = {}
    for topic, index in sorted(partitions):
        topics.setdefault(topic, []).append(index)
    return topics


def _each(topics: dict[str, list[int]], codes: dict[TopicPartition, ErrorCode],
          default: ErrorCode) -> dict[TopicPartition, ErrorCode]:
    """The code of every asked partition: what was answered, else `default`."""
    return {(name, index): codes.get((name, index), default)
            for name, indexes in topics.items() for index in indexes}


class TxnChannel:
    def __init__(self, image: Callable[[], MetadataImage], peers: PeerClient | None,
                 *, timeout: float = 30.0) -> None:
        self._image = image
        self._peers = peers
        self.timeout = timeout

    @property
    def enabled(self) -> bool:
        """False on a single node: every partition and coordinator is local."""
        return self._peers is not None

    def _broker(self, node_id: int) -> BrokerInfo:
        broker = self._image().brokers.get(node_id)
        if broker is None:
            raise NotLeaderOrFollowerError(f"broker {node_id} is not registered")
        return broker

    async def write_markers(self, leader: int, producer_id: int, producer_epoch: int,
                            coordinator_epoch: int, commit: bool,
                            partitions: Iterable[TopicPartition]
                            ) -> dict[TopicPartition, ErrorCode]:
        """Send one transaction's markers for `partitions` to their leader
        `leader`; the error code per partition (none: committed there).
        Raises NetworkError/RequestTimedOutError when the leader cannot be asked."""
        # The schemas are imported by the first request to another broker, not
        # by every broker at start (the two requests' were ~6 ms of it; issue 19).
        from kio.schema.write_txn_markers.v1.request import (
            WritableTxnMarker,
            WritableTxnMarkerTopic,
            WriteTxnMarkersRequest,
        )
        from kio.schema.write_txn_markers.v1.response import WriteTxnMarkersResponse

        assert self._peers is not None
        topics = _by_topic(partitions)
        request = WriteTxnMarkersRequest(markers=(WritableTxnMarker(
            producer_id=ProducerId(producer_id), producer_epoch=i16(producer_epoch),
            transaction_result=commit, coordinator_epoch=i32(coordinator_epoch),
            topics=tuple(WritableTxnMarkerTopic(
                name=TopicName(name), partition_indexes=tuple(i32(i) for i in indexes))
                for name, indexes in topics.items())),))
        response = await self._peers.request(self._broker(leader), request,
                                             WriteTxnMarkersResponse, timeout=self.timeout)
        codes: dict[TopicPartition, ErrorCode] = {}
        for marker in response.markers:
            for topic in marker.topics:
                for result in topic.partitions:
                    codes[(str(topic.name), int(result.partition_index))] = \
                        ErrorCode(result.error_code)
        # A partition the leader did not answer for was not written.
        return _each(topics, codes, ErrorCode.unknown_server_error)

    async def add_partitions(self, coordinator: int, transactional_id: str, producer_id: int,
                             producer_epoch: int, partitions: Iterable[TopicPartition], *,
                             verify_only: bool) -> dict[TopicPartition, ErrorCode]:
        """Ask the coordinator `coordinator` to verify (or add) `partitions`
        in the producer's transaction; the error code per partition."""
        from kio.schema.add_partitions_to_txn.v5.request import (
            AddPartitionsToTxnRequest,
            AddPartitionsToTxnTopic,
            AddPartitionsToTxnTransaction,
        )
        from kio.schema.add_partitions_to_txn.v5.response import AddPartitionsToTxnResponse

        assert self._peers is not None
        topics = _by_topic(partitions)
        request = AddPartitionsToTxnRequest(transactions=(AddPartitionsToTxnTransaction(
            transactional_id=TransactionalId(transactional_id),
            producer_id=ProducerId(producer_id), producer_epoch=i16(producer_epoch),
            verify_only=verify_only,
            topics=tuple(AddPartitionsToTxnTopic(
                name=TopicName(name), partitions=tuple(i32(i) for i in indexes))
                for name, indexes in topics.items())),))
        try:
            response = await self._peers.request(self._broker(coordinator), request,
                                                 AddPartitionsToTxnResponse,
                                                 timeout=self.timeout)
        except KafkaError:
            # Kafka's AddPartitionsToTxnManager: the coordinator cannot be
            # reached; the producer retries (a retriable verification error).
            return _each(topics, {}, ErrorCode.coordinator_not_available)
        codes: dict[TopicPartition, ErrorCode] = {}
        if response.error_code != ErrorCode.none:
            return _each(topics, {}, ErrorCode(response.error_code))
        for result in response.results_by_transaction:
            for topic in result.topic_results:
                for partition in topic.results_by_partition:
                    codes[(str(topic.name), int(partition.partition_index))] = \
                        ErrorCode(partition.partition_error_code)
        return _each(topics, codes, ErrorCode.unknown_server_error)
