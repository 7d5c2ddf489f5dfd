"""The transaction coordinator as the broker's handlers see it.

It owns the runtime over `__transaction_state` (created at start-up if
missing, compacted, `transaction.state.log.num.partitions` partitions),
loads the partitions this broker leads, routes each transactional id to its
partition with Kafka's function (the same Java String.hashCode rule as
groups), and writes the transaction markers. Kafka sends markers to the
partition leaders with WriteTxnMarkers; a partition this broker leads is
written directly, through the same `Partition.write_txn_marker` that the
WriteTxnMarkers handler uses. A transaction completes (COMPLETE_COMMIT /
COMPLETE_ABORT) only once every marker is durable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from strom.clock import Clock
from strom.cluster.image import TRANSACTION_STATE_TOPIC, MetadataImage
from strom.cluster.store import MetadataStore
from strom.config import BrokerConfig
from strom.coordinator.group.service import TOPIC as GROUP_TOPIC
from strom.coordinator.group.service import partition_for
from strom.coordinator.regex import full_matcher
from strom.coordinator.runtime import (
    CoordinatorRuntime,
    LeaderPartition,
    Result,
    Timer,
)
from strom.coordinator.state_topic import CreateTopic, coordinator_node, state_topic_replication
from strom.coordinator.txn.shard import ConcurrentTransactionsError, TxnConfig, TxnCoordinatorShard
from strom.coordinator.txn.state import TopicPartition, TransactionMetadata, TxnState
from strom.errors import ErrorCode, KafkaError, UnknownTopicOrPartitionError, error_code_for

log = logging.getLogger(__name__)

T = TypeVar("T")

TOPIC = TRANSACTION_STATE_TOPIC
MARKER_RETRY_S = 0.1
# How long a request of a transactional id whose previous transaction is still
# completing (its markers being written and fsync'd, then its COMPLETE state
# written) waits for that, instead of answering CONCURRENT_TRANSACTIONS at once.
# Kafka answers at once and the client backs off: franz-go 20 ms for EndTxn and
# AddPartitionsToTxn, but its produce retry backoff (250 ms and up) for a v12
# produce, whose error is NOT_ENOUGH_REPLICAS; strom's fsync'd markers make the
# window a group-commit round, so nearly every next transaction hit it.
SETTLE_WAIT_S = 1.0


class MarkerPartition(LeaderPartition, Protocol):
    @property
    def leader_epoch(self) -> int: ...

    def write_txn_marker(self, producer_id: int, producer_epoch: int, coordinator_epoch: int,
                         commit: bool) -> int: ...


class Replicas(Protocol):
    def get(self, topic: str, index: int) -> MarkerPartition: ...


class MarkerSender(Protocol):
    """Writes a transaction's markers on another broker (broker/txn_channel.py)."""

    async def write_markers(self, leader: int, producer_id: int, producer_epoch: int,
                            coordinator_epoch: int, commit: bool,
                            partitions: Iterable[TopicPartition]
                            ) -> dict[TopicPartition, ErrorCode]: ...


# (group partition, producer id, commit): the group coordinator applies the marker.
GroupMarkerListener = Callable[[int, int, bool], None]


class TransactionCoordinator:
    def __init__(self, config: BrokerConfig, clock: Clock, metadata: MetadataStore,
                 replicas: Replicas, allocate_producer_id: Callable[[], int], *,
                 node_id: int, create_topic: CreateTopic) -> None:
        self.broker_config = config
        self._create = create_topic
        self.clock = clock
        self.metadata = metadata
        self.replicas = replicas
        self.node_id = node_id
        self._allocate = allocate_producer_id
        self.config = TxnConfig.from_broker(config)
        self.on_group_marker: GroupMarkerListener | None = None
        #: Markers for partitions led by other brokers (cluster mode; None on a single node).
        self.marker_sender: MarkerSender | None = None
        self.runtime: CoordinatorRuntime[TxnCoordinatorShard] = CoordinatorRuntime(
            TOPIC, self._new_shard, clock)
        self._markers: set[asyncio.Task[None]] = set()
        #: Transactions completed here (markers written, COMPLETE_* durable): /metrics.
        self.completed_commits = 0
        self.completed_aborts = 0
        self._closed = False
        # Produce requests of one transactional id, in arrival order (see produce_turn).
        self._produce_turns: dict[str, asyncio.Future[None]] = {}
        # Requests waiting for a transactional id to leave its PREPARE state.
        self.settle_wait_s = SETTLE_WAIT_S
        self._settle_waiters: dict[str, list[asyncio.Future[None]]] = {}

    def _new_shard(self, partition: int, timer: Timer) -> TxnCoordinatorShard:
        return TxnCoordinatorShard(partition, timer, self.config, self.clock, self._allocate,
                                   self._drive_markers, self._settled)

    def _settled(self, transactional_id: str) -> None:
        for fut in self._settle_waiters.pop(transactional_id, ()):
            if not fut.done():
                fut.set_result(None)

    async def _write_settled(self, transactional_id: str,
                             operation: Callable[[TxnCoordinatorShard], Result[T]],
                             wait_s: float | None) -> T:
        """`runtime.write(operation)`; while the id's previous transaction is still
        completing, wait (up to `wait_s`, default `settle_wait_s`) for it and run
        the operation again, as the client's retry would, instead of answering
        CONCURRENT_TRANSACTIONS at once. The operation raises before the write's
        first await, so the waiter is registered before the id can settle."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.settle_wait_s if wait_s is None else wait_s)
        partition = self.partition_for(transactional_id)
        while True:
            try:
                return await self.runtime.write(partition, operation)
            except ConcurrentTransactionsError:
                remaining = deadline - loop.time()
                if remaining <= 0 or self._closed:
                    raise
                fut: asyncio.Future[None] = loop.create_future()
                waiters = self._settle_waiters.setdefault(transactional_id, [])
                waiters.append(fut)
                try:
                    await asyncio.wait_for(fut, remaining)
                except TimeoutError:
                    raise ConcurrentTransactionsError(
                        f"{transactional_id} is completing a transaction") from None
                finally:
                    if fut in waiters:
                        waiters.remove(fut)
                    if not waiters and self._settle_waiters.get(transactional_id) is waiters:
                        del self._settle_waiters[transactional_id]

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Load the partitions of `__transaction_state` we lead; the topic is
        created on first use (FindCoordinator), as Kafka does."""
        self.metadata.subscribe(self.on_image)
        self.on_image(None, self.metadata.image)

    async def _create_topic(self) -> None:
        if TOPIC not in self.metadata.image.topics:
            brokers = len(self.metadata.image.brokers)
            partitions = self.config.state_log_num_partitions
            replication = self.config.state_log_replication_factor
            segment_bytes = self.config.state_log_segment_bytes
            replication = state_topic_replication(
                TOPIC, replication, brokers, cluster=bool(self.broker_config.etcd_endpoints))
            # Kafka sets the topic's min.insync.replicas to transaction.state.log.min.isr;
            # capped here as the replication factor is, so that a single node
            # (one replica) can still write its transaction state.
            min_isr = min(self.config.state_log_min_isr, replication)
            await self._create(
                TOPIC, partitions, replication,
                {"cleanup.policy": "compact", "compression.type": "uncompressed",
                 "min.insync.replicas": str(min_isr), "segment.bytes": str(segment_bytes),
                 "unclean.leader.election.enable": "false"})
            log.info("created %s with %d partitions", TOPIC, partitions)

    def on_image(self, old: MetadataImage | None, new: MetadataImage) -> None:
        self.runtime.follow_topic(new, TOPIC, self.node_id,
                                  lambda partition: self.replicas.get(TOPIC, partition))

    async def stop(self) -> None:
        self._closed = True
        for transactional_id in list(self._settle_waiters):
            self._settled(transactional_id)
        for task in list(self._markers):
            task.cancel()
        if self._markers:
            await asyncio.gather(*self._markers, return_exceptions=True)
        await self.runtime.close()

    # -- routing ------------------------------------------------------------------------

    @property
    def num_partitions(self) -> int:
        topic = self.metadata.image.topics.get(TOPIC)
        if topic is not None:
            return len(topic.partitions)
        return self.config.state_log_num_partitions

    def partition_for(self, transactional_id: str) -> int:
        return partition_for(transactional_id, self.num_partitions)

    async def coordinator_for(self, transactional_id: str) -> int | None:
        return await coordinator_node(lambda: self.metadata.image, TOPIC, self._create_topic,
                                lambda count: partition_for(transactional_id, count))

    def group_partition(self, group_id: str) -> TopicPartition:
        topic = self.metadata.image.topics.get(GROUP_TOPIC)
        count = (len(topic.partitions) if topic is not None
                 else self.config.offsets_topic_num_partitions)
        return GROUP_TOPIC, partition_for(group_id, count)

    # -- operations ---------------------------------------------------------------------

    async def init_producer_id(self, transactional_id: str, timeout_ms: int, producer_id: int,
                               producer_epoch: int) -> tuple[ErrorCode, int, int]:
        try:
            return await self.runtime.write(
                self.partition_for(transactional_id),
                lambda s: s.init_producer_id(transactional_id, timeout_ms, producer_id,
                                             producer_epoch))
        except Exception as exc:
            return coordinator_error(exc), -1, -1

    async def add_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                             partitions: list[TopicPartition], *,
                             wait_s: float | None = None) -> ErrorCode:
        """Waits up to `wait_s` (default `settle_wait_s`) while the id's previous
        transaction completes."""
        try:
            await self._write_settled(
                transactional_id,
                lambda s: s.add_partitions(transactional_id, producer_id, producer_epoch,
                                           partitions), wait_s)
        except Exception as exc:
            return coordinator_error(exc)
        return ErrorCode.none

    def verify_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                          partitions: list[TopicPartition]) -> dict[TopicPartition, ErrorCode]:
        try:
            return self.runtime.read(
                self.partition_for(transactional_id),
                lambda s: s.verify_partitions(transactional_id, producer_id, producer_epoch,
                                              partitions))
        except Exception as exc:
            code = coordinator_error(exc)
            return dict.fromkeys(partitions, code)

    async def end_transaction(self, transactional_id: str, producer_id: int,
                              producer_epoch: int, commit: bool, transaction_version: int = 1
                              ) -> tuple[ErrorCode, int, int]:
        """(error, producer id, epoch to continue with; -1 when unchanged). Waits up
        to `settle_wait_s` while the id's previous transaction completes."""
        try:
            pid, epoch = await self._write_settled(
                transactional_id,
                lambda s: s.end_transaction(transactional_id, producer_id, producer_epoch,
                                            commit, transaction_version), None)
        except Exception as exc:
            return coordinator_error(exc), -1, -1
        return ErrorCode.none, pid, epoch

    def describe(self, transactional_id: str) -> tuple[ErrorCode, TransactionMetadata | None]:
        try:
            m = self.runtime.read(self.partition_for(transactional_id),
                                  lambda s: s.describe(transactional_id))
        except Exception as exc:
            return coordinator_error(exc), None
        if m is None:
            return ErrorCode.transactional_id_not_found, None
        return ErrorCode.none, m

    def list_transactions(self, states: list[str], producer_ids: list[int],
                          duration_ms: int, pattern: str | None) -> list[TransactionMetadata]:
        wanted = {TxnState.of_display(s) for s in states}
        matches = full_matcher(pattern, "TransactionalIdPattern") if pattern else None
        now = self.clock.wall_ms()
        out: list[TransactionMetadata] = []
        for partition in self.runtime.partitions:
            try:
                found = self.runtime.read(partition, lambda s: list(s.transactions.values()))
            except KafkaError:
                continue
            for m in found:
                if m.state is TxnState.DEAD:
                    continue
                if states and m.state not in wanted:
                    continue
                if producer_ids and m.producer_id not in producer_ids:
                    continue
                if duration_ms >= 0 and (m.state is not TxnState.ONGOING
                                         or now - m.start_ms < duration_ms):
                    continue
                if matches is not None and not matches(m.transactional_id):
                    continue
                out.append(m)
        return out

    def produce_turn(self, transactional_id: str
                     ) -> tuple[asyncio.Future[None] | None, asyncio.Future[None]]:
        """(the previous request's turn to await, this request's turn to finish).

        A produce that adds its partitions to the transaction (v12+) awaits the
        coordinator before it appends; the requests a producer pipelines behind
        it must not overtake it, or their sequence numbers arrive out of order.
        Taken before the handler's first await, turns follow arrival order."""
        previous = self._produce_turns.get(transactional_id)
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._produce_turns[transactional_id] = mine

        def done(_: asyncio.Future[None]) -> None:
            if self._produce_turns.get(transactional_id) is mine:
                del self._produce_turns[transactional_id]
        mine.add_done_callback(done)
        return previous, mine

    # -- markers ------------------------------------------------------------------------

    def _drive_markers(self, partition: int, metadata: TransactionMetadata) -> None:
        if self._closed:
            return
        task = asyncio.get_running_loop().create_task(
            self._write_markers(partition, metadata),
            name=f"txn-markers-{metadata.transactional_id}")
        self._markers.add(task)
        task.add_done_callback(self._markers.discard)

    async def _write_markers(self, partition: int, m: TransactionMetadata) -> None:
        commit = m.state is TxnState.PREPARE_COMMIT
        coordinator_epoch = self.replicas.get(TOPIC, partition).leader_epoch
        written: list[tuple[MarkerPartition, int]] = []
        pending = set(m.partitions)
        while pending:
            if not self.runtime.is_active(partition):
                return  # no longer the coordinator: the next one finishes the job
            remote: dict[int, list[TopicPartition]] = {}
            for topic, index in sorted(pending):
                leader = self._marker_leader(topic, index)
                if leader is None:
                    pending.discard((topic, index))  # deleted topic: nothing to mark, as in Kafka
                elif leader == self.node_id:
                    try:
                        target = self.replicas.get(topic, index)
                        end = target.write_txn_marker(m.producer_id, m.producer_epoch,
                                                      coordinator_epoch, commit)
                    except UnknownTopicOrPartitionError:
                        pending.discard((topic, index))
                        continue
                    except KafkaError as exc:
                        log.warning("marker for %s on %s-%d failed (%s); retrying",
                                    m.transactional_id, topic, index, exc)
                        continue
                    pending.discard((topic, index))
                    written.append((target, end))
                    if topic == GROUP_TOPIC and self.on_group_marker is not None:
                        self.on_group_marker(index, m.producer_id, commit)
                elif leader >= 0:
                    remote.setdefault(leader, []).append((topic, index))
            for leader, tps in remote.items():
                assert self.marker_sender is not None
                try:
                    codes = await self.marker_sender.write_markers(
                        leader, m.producer_id, m.producer_epoch, coordinator_epoch, commit, tps)
                except KafkaError as exc:
                    log.warning("markers for %s to broker %d failed (%s); retrying",
                                m.transactional_id, leader, exc)
                    continue
                for tp, code in codes.items():
                    if code == ErrorCode.none:
                        pending.discard(tp)  # committed on its leader before it answered
                    elif code != ErrorCode.unknown_topic_or_partition:
                        log.warning("marker for %s on %s-%d failed on broker %d (%s); retrying",
                                    m.transactional_id, tp[0], tp[1], leader, code.name)
            if pending:
                await asyncio.sleep(MARKER_RETRY_S)  # a leader moves, a broker comes back
        for target, end in written:
            await target.wait_durable(end)
        try:
            await self.runtime.write(
                partition, lambda s: s.complete(m.transactional_id, m.producer_id,
                                                m.producer_epoch))
        except KafkaError as exc:
            log.warning("completing %s failed: %s", m.transactional_id, exc)
        else:
            if commit:
                self.completed_commits += 1
            else:
                self.completed_aborts += 1

    def _marker_leader(self, topic: str, index: int) -> int | None:
        """Where a marker for a partition goes: this broker (always, on a single
        node), another broker, -1 while it has no leader; None if it is gone."""
        if self.marker_sender is None:
            return self.node_id
        info = self.metadata.image.topics.get(topic)
        if info is None or not 0 <= index < len(info.partitions):
            return None
        return info.partitions[index].leader


def coordinator_error(exc: BaseException) -> ErrorCode:
    if not isinstance(exc, KafkaError):
        log.error("transaction coordinator operation failed", exc_info=exc)
        return ErrorCode.unknown_server_error
    code = error_code_for(exc)
    if code in (ErrorCode.unknown_topic_or_partition, ErrorCode.not_enough_replicas,
                ErrorCode.request_timed_out):
        return ErrorCode.coordinator_not_available
    if code in (ErrorCode.not_leader_or_follower, ErrorCode.kafka_storage_error):
        return ErrorCode.not_coordinator
    return code
