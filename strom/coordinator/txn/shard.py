"""One `__transaction_state` partition's transactional ids: the coordinator shard.

Kafka's TransactionStateManager and the state-changing half of
TransactionCoordinator. Operations validate a request against the current
metadata and compute (records, response); the runtime writes the record and
replay installs it (CONVENTIONS 5). Ending a transaction is two writes with
the markers between them: PREPARE_COMMIT/ABORT is written and answered;
once it is durable the service writes the COMMIT/ABORT markers to every
partition of the transaction, waits until they are durable, and writes
COMPLETE_COMMIT/ABORT (`complete`). A shard loaded with a transaction in a
PREPARE state (the broker died between the two) hands it to the service
again, so markers are always written: no transaction is left hanging.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from strom.clock import Clock
from strom.config import BrokerConfig
from strom.coordinator.runtime import Result, Timer
from strom.coordinator.txn import records as rec
from strom.coordinator.txn.state import (
    MAX_EPOCH,
    NO_PRODUCER_ID,
    TopicPartition,
    TransactionMetadata,
    TxnState,
)
from strom.errors import (
    ErrorCode,
    InvalidTxnStateError,
    KafkaError,
    ProducerFencedError,
)

log = logging.getLogger(__name__)

ABORT_TIMED_OUT_KEY = "abort-timed-out-transactions"


class ConcurrentTransactionsError(KafkaError):
    code = ErrorCode.concurrent_transactions
    retriable = True


class InvalidProducerIdMappingError(KafkaError):
    code = ErrorCode.invalid_producer_id_mapping


class InvalidTransactionTimeoutError(KafkaError):
    code = ErrorCode.invalid_transaction_timeout


@dataclass(frozen=True, slots=True)
class TxnConfig:
    """The broker settings of the transaction coordinator, typed, read once."""

    max_timeout_ms: int = 900000
    abort_check_interval_ms: int = 10000
    transactional_id_expiration_ms: int = 604800000
    # __transaction_state as created on first use.
    state_log_num_partitions: int = 50
    state_log_replication_factor: int = 3
    state_log_min_isr: int = 2
    state_log_segment_bytes: int = 104857600
    # __consumer_offsets' partition count before it exists (TxnOffsetCommit routing).
    offsets_topic_num_partitions: int = 50

    @classmethod
    def from_broker(cls, config: BrokerConfig) -> TxnConfig:
        def get(name: str) -> int:
            value = config.get(name)
            assert isinstance(value, int)
            return value

        return cls(
            max_timeout_ms=get("transaction.max.timeout.ms"),
            abort_check_interval_ms=get(
                "transaction.abort.timed.out.transaction.cleanup.interval.ms"),
            transactional_id_expiration_ms=get("transactional.id.expiration.ms"),
            state_log_num_partitions=get("transaction.state.log.num.partitions"),
            state_log_replication_factor=get("transaction.state.log.replication.factor"),
            state_log_min_isr=get("transaction.state.log.min.isr"),
            state_log_segment_bytes=get("transaction.state.log.segment.bytes"),
            offsets_topic_num_partitions=get("offsets.topic.num.partitions"),
        )


# Called with a transaction in a PREPARE state whose record is durable.
MarkerDriver = Callable[[int, TransactionMetadata], None]
# Called with a transactional id that left a PREPARE state (its COMPLETE record is
# written and replayed), or whose shard was unloaded: requests waiting for it retry.
SettledListener = Callable[[str], None]


class TxnCoordinatorShard:
    def __init__(self, partition: int, timer: Timer, config: TxnConfig, clock: Clock,
                 allocate_producer_id: Callable[[], int], drive_markers: MarkerDriver,
                 on_settled: SettledListener | None = None) -> None:
        self.partition = partition
        self.timer = timer
        self.config = config
        self.clock = clock
        self._allocate = allocate_producer_id
        self._drive = drive_markers
        self._on_settled = on_settled
        self.transactions: dict[str, TransactionMetadata] = {}

    # -- records ------------------------------------------------------------------------

    def replay(self, offset: int, key: bytes, value: bytes | None) -> None:
        del offset
        transactional_id = rec.decode_key(key)
        if transactional_id is None:
            return
        previous = self.transactions.get(transactional_id)
        if value is None:
            self.transactions.pop(transactional_id, None)
            self._settled(transactional_id, previous)
            return
        metadata = rec.decode_value(transactional_id, value)
        if previous is not None and previous.producer_id == metadata.producer_id:
            # Remember the epoch before the last bump: a retried InitProducerId
            # (KIP-360) or EndTxn (transaction version 2) is recognised by it.
            metadata = _with_last_epoch(
                metadata, previous.producer_epoch
                if previous.producer_epoch != metadata.producer_epoch
                else previous.last_producer_epoch)
        self.transactions[transactional_id] = metadata
        if not metadata.state.is_prepare:
            self._settled(transactional_id, previous)

    def _settled(self, transactional_id: str, previous: TransactionMetadata | None) -> None:
        if self._on_settled is not None and previous is not None and previous.state.is_prepare:
            self._on_settled(transactional_id)

    def on_loaded(self) -> None:
        self._schedule_abort_check()
        for metadata in self.transactions.values():
            if metadata.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
                self._drive(self.partition, metadata)

    def on_unloaded(self) -> None:
        ids = list(self.transactions)
        self.transactions.clear()
        if self._on_settled is not None:
            for transactional_id in ids:
                self._on_settled(transactional_id)

    # -- helpers ------------------------------------------------------------------------

    def _now(self) -> int:
        return self.clock.wall_ms()

    def _prepared(self, response: Any, metadata: TransactionMetadata) -> Result[Any]:
        """Write a PREPARE state; drive its markers once it is durable."""
        def durable(error: BaseException | None) -> None:
            if error is None:
                self._drive(self.partition, metadata)
        return Result(response, [rec.encode(metadata)], on_durable=durable)

    def _bumped(self, m: TransactionMetadata) -> dict[str, Any]:
        """Field changes for the next epoch, or a new producer id if epochs ran out."""
        if m.producer_epoch >= MAX_EPOCH:
            return {"producer_id": self._allocate(), "producer_epoch": 0,
                    "previous_producer_id": m.producer_id, "last_producer_epoch": -1}
        return {"producer_epoch": m.producer_epoch + 1, "last_producer_epoch": m.producer_epoch}

    def _check_not_completing(self, transactional_id: str) -> None:
        """While a transaction's markers are written (a PREPARE state; Kafka holds a
        pending transition to the COMPLETE state meanwhile) its id answers
        CONCURRENT_TRANSACTIONS, before any producer id or epoch check, as Kafka
        does since KAFKA-18660: the producer already holds the epoch (or, after
        epoch exhaustion, the producer id) that EndTxn v5 answered, which the
        metadata only takes on once complete; checking it first would fence that
        producer. The client retries until the transaction is complete."""
        m = self.transactions.get(transactional_id)
        if m is not None and m.state.is_prepare:
            raise ConcurrentTransactionsError(f"{transactional_id} is completing a transaction")

    def _current(self, transactional_id: str, producer_id: int,
                 producer_epoch: int) -> TransactionMetadata:
        m = self.transactions.get(transactional_id)
        if m is None or m.state is TxnState.DEAD or m.producer_id != producer_id:
            raise InvalidProducerIdMappingError(
                f"producer id {producer_id} does not own transactional id {transactional_id}")
        if m.producer_epoch != producer_epoch:
            raise ProducerFencedError(
                f"producer epoch {producer_epoch} of {transactional_id} is not the current "
                f"epoch {m.producer_epoch}")
        return m

    # -- operations ---------------------------------------------------------------------

    def init_producer_id(self, transactional_id: str, timeout_ms: int, producer_id: int,
                         producer_epoch: int) -> Result[tuple[ErrorCode, int, int]]:
        """(producer id, epoch) for a transactional producer; fences older producers."""
        if timeout_ms <= 0 or timeout_ms > self.config.max_timeout_ms:
            raise InvalidTransactionTimeoutError(
                f"transaction timeout {timeout_ms} ms is outside (0, "
                f"{self.config.max_timeout_ms}]")
        now = self._now()
        m = self.transactions.get(transactional_id)
        if m is None or m.state is TxnState.DEAD:
            new = TransactionMetadata(transactional_id, self._allocate(), 0, timeout_ms,
                                      TxnState.EMPTY, last_update_ms=now)
            return Result((ErrorCode.none, new.producer_id, new.producer_epoch), [rec.encode(new)])
        if m.state.is_prepare:
            raise ConcurrentTransactionsError(f"{transactional_id} is completing a transaction")
        if producer_id != NO_PRODUCER_ID:
            # KIP-360: a producer that knows its id asks for a bump; a retry of a
            # bump that already happened gets the current epoch.
            if producer_id == m.producer_id and producer_epoch == m.last_producer_epoch \
                    and m.state is not TxnState.ONGOING:
                return Result((ErrorCode.none, m.producer_id, m.producer_epoch))
            if producer_id == m.previous_producer_id and m.producer_epoch == 0:
                return Result((ErrorCode.none, m.producer_id, m.producer_epoch))
            if producer_id != m.producer_id or producer_epoch != m.producer_epoch:
                raise ProducerFencedError(
                    f"producer {producer_id} epoch {producer_epoch} is not the current "
                    f"producer of {transactional_id}")
        if m.state is TxnState.ONGOING:
            # Fence the old producer and abort its transaction with the bumped
            # epoch; this producer retries (CONCURRENT_TRANSACTIONS) until it is done.
            fenced = m.transition(TxnState.PREPARE_ABORT, last_update_ms=now,
                                  **_fence_bump(m))
            return self._prepared((ErrorCode.concurrent_transactions, -1, -1), fenced)
        new = m.transition(TxnState.EMPTY, partitions=frozenset(), timeout_ms=timeout_ms,
                           start_ms=-1, last_update_ms=now, **self._bumped(m))
        return Result((ErrorCode.none, new.producer_id, new.producer_epoch), [rec.encode(new)])

    def add_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                       partitions: Iterable[TopicPartition]) -> Result[None]:
        self._check_not_completing(transactional_id)
        m = self._current(transactional_id, producer_id, producer_epoch)
        wanted = frozenset(partitions)
        if m.state is TxnState.ONGOING and wanted <= m.partitions:
            return Result(None)
        now = self._now()
        start = m.start_ms if m.state is TxnState.ONGOING else now
        new = m.transition(TxnState.ONGOING, partitions=m.partitions | wanted, start_ms=start,
                           last_update_ms=now)
        return Result(None, [rec.encode(new)])

    def verify_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                          partitions: Iterable[TopicPartition]) -> dict[TopicPartition, ErrorCode]:
        """KIP-890 part 1: is each partition in the ongoing transaction?"""
        m = self._current(transactional_id, producer_id, producer_epoch)
        ongoing = m.state is TxnState.ONGOING
        return {tp: ErrorCode.none if ongoing and tp in m.partitions
                else ErrorCode.invalid_txn_state for tp in partitions}

    def end_transaction(self, transactional_id: str, producer_id: int, producer_epoch: int,
                        commit: bool, transaction_version: int = 1
                        ) -> Result[tuple[int, int]]:
        """(producer id, epoch) the producer continues with: unchanged in version 1,
        bumped in version 2 (KIP-890 part 2), where every transaction ends with a
        new epoch, so a late batch of the ended transaction is fenced."""
        if transaction_version >= 2:
            return self._end_transaction_v2(transactional_id, producer_id, producer_epoch,
                                            commit)
        m = self._current(transactional_id, producer_id, producer_epoch)
        state = m.state
        unchanged = (-1, -1)
        if state.is_prepare:
            # Either result: Kafka's pending transition to the COMPLETE state answers first.
            raise ConcurrentTransactionsError(f"{transactional_id} is completing a transaction")
        if state is TxnState.ONGOING:
            target = TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT
            return self._prepared(unchanged, m.transition(target, last_update_ms=self._now()))
        done = TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT
        if state is done:
            return Result(unchanged)  # a retry of an EndTxn that completed
        raise InvalidTxnStateError(
            f"cannot {'commit' if commit else 'abort'} {transactional_id} in state "
            f"{state.display}")

    def _end_transaction_v2(self, transactional_id: str, producer_id: int,
                            producer_epoch: int, commit: bool) -> Result[tuple[int, int]]:
        # A retry of the EndTxn that bumped the epoch, or the next transaction of
        # the producer that got the bumped epoch: both wait until this one completes.
        self._check_not_completing(transactional_id)
        m = self.transactions.get(transactional_id)
        if m is None or m.state is TxnState.DEAD:
            raise InvalidProducerIdMappingError(
                f"producer id {producer_id} does not own transactional id {transactional_id}")
        done = TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT
        preparing = TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT
        if m.state is done and (
                (m.producer_id == producer_id and producer_epoch == m.last_producer_epoch
                 and m.producer_epoch == producer_epoch + 1)
                or (m.previous_producer_id == producer_id and producer_epoch == MAX_EPOCH
                    and m.producer_epoch == 0)):
            # A retry of the EndTxn that completed (after epoch exhaustion, that
            # moved to a new producer id): the same answer again.
            return Result((m.producer_id, m.producer_epoch))
        if m.producer_id != producer_id:
            raise InvalidProducerIdMappingError(
                f"producer id {producer_id} does not own transactional id {transactional_id}")
        if producer_epoch != m.producer_epoch:
            raise ProducerFencedError(
                f"producer epoch {producer_epoch} of {transactional_id} is not the current "
                f"epoch {m.producer_epoch}")
        if m.state is TxnState.ONGOING or (not commit and m.state.is_complete_or_empty):
            bumped = producer_epoch + 1
            changes: dict[str, Any] = {"producer_epoch": bumped,
                                       "last_producer_epoch": producer_epoch,
                                       "transaction_version": 2, "last_update_ms": self._now()}
            answer = (m.producer_id, bumped)
            if producer_epoch >= MAX_EPOCH:
                # Epochs ran out (KIP-890): the markers use the last one, Short.MAX_VALUE;
                # the producer continues with a new producer id at epoch 0, which the
                # COMPLETE state takes on (`complete`).
                changes["next_producer_id"] = self._allocate()
                answer = (changes["next_producer_id"], 0)
            return self._prepared(answer, m.transition(preparing, **changes))
        raise InvalidTxnStateError(
            f"cannot {'commit' if commit else 'abort'} {transactional_id} in state "
            f"{m.state.display}")

    def complete(self, transactional_id: str, producer_id: int,
                 producer_epoch: int) -> Result[None]:
        """The markers of a prepared transaction are durable: write its end state."""
        m = self.transactions.get(transactional_id)
        if m is None or m.producer_id != producer_id or m.producer_epoch != producer_epoch:
            return Result(None)
        if m.state is TxnState.PREPARE_COMMIT:
            target = TxnState.COMPLETE_COMMIT
        elif m.state is TxnState.PREPARE_ABORT:
            target = TxnState.COMPLETE_ABORT
        else:
            return Result(None)
        changes: dict[str, Any] = {}
        if m.next_producer_id >= 0:
            changes = {"producer_id": m.next_producer_id, "producer_epoch": 0,
                       "previous_producer_id": m.producer_id, "next_producer_id": -1,
                       "last_producer_epoch": -1}
        new = m.transition(target, partitions=frozenset(), last_update_ms=self._now(),
                           **changes)
        return Result(None, [rec.encode(new)])

    def abort_timed_out(self) -> Result[None]:
        """Abort, with a bumped epoch (fencing the producer), every transaction past its
        timeout; forget ids idle for longer than transactional.id.expiration.ms."""
        now = self._now()
        records: list[tuple[bytes, bytes | None]] = []
        prepared = []
        for m in self.transactions.values():
            if m.state is TxnState.ONGOING and m.start_ms + m.timeout_ms < now:
                log.info("aborting transaction of %s: open for %d ms, timeout %d ms",
                         m.transactional_id, now - m.start_ms, m.timeout_ms)
                aborted = m.transition(TxnState.PREPARE_ABORT, last_update_ms=now,
                                       **_fence_bump(m))
                records.append(rec.encode(aborted))
                prepared.append(aborted)

            elif m.state.is_complete_or_empty \
                    and now - m.last_update_ms > self.config.transactional_id_expiration_ms:
                # transactional.id.expiration.ms: an idle id is forgotten (a tombstone).
                log.info("expiring transactional id %s", m.transactional_id)
                records.append(rec.tombstone(m.transactional_id))

        def durable(error: BaseException | None) -> None:
            if error is None:
                for metadata in prepared:
                    self._drive(self.partition, metadata)

        self._schedule_abort_check()
        return Result(None, list(records), on_durable=durable if prepared else None)

    def _schedule_abort_check(self) -> None:
        self.timer.schedule(ABORT_TIMED_OUT_KEY, self.config.abort_check_interval_ms,
                            self.abort_timed_out)

    # -- reads --------------------------------------------------------------------------

    def describe(self, transactional_id: str) -> TransactionMetadata | None:
        m = self.transactions.get(transactional_id)
        return None if m is None or m.state is TxnState.DEAD else m


def _fence_bump(m: TransactionMetadata) -> dict[str, Any]:
    """A fencing abort keeps the producer id (its markers must carry it) and bumps
    the epoch, up to Short.MAX_VALUE: past MAX_EPOCH only markers use an epoch."""
    if m.producer_epoch >= MAX_EPOCH + 1:
        return {}
    return {"producer_epoch": m.producer_epoch + 1, "last_producer_epoch": m.producer_epoch}


def _with_last_epoch(m: TransactionMetadata, epoch: int) -> TransactionMetadata:
    return dataclasses.replace(m, last_producer_epoch=epoch)
