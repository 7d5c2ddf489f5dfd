"""A transactional id's state: Kafka's TransactionState, as data (CONVENTIONS 6).

`TRANSITIONS[state]` is the set of states a transaction may move to from
`state`; `TransactionMetadata.transition` is the one place it is checked.
Metadata is immutable: an operation computes the next metadata, writes it
to `__transaction_state`, and replay installs it (CONVENTIONS 5).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

from strom.errors import InvalidTxnStateError

NO_PRODUCER_ID = -1
NO_EPOCH = -1
# The last epoch a producer is given (Short.MAX_VALUE - 1, Kafka's "exhausted"):
# the next bump moves to a new producer id (TV2 markers use Short.MAX_VALUE).
MAX_EPOCH = 32767 - 1


class TxnState(enum.Enum):
    """(status byte in TransactionLogValue, name DescribeTransactions reports)."""

    EMPTY = (0, "Empty")
    """No transaction open. InitProducerId bumps the epoch; AddPartitions opens one."""
    ONGOING = (1, "Ongoing")
    """Partitions added. AddPartitions adds more; EndTxn prepares; a timeout aborts."""
    PREPARE_COMMIT = (2, "PrepareCommit")
    """Commit decided, markers being written. Everything else: CONCURRENT_TRANSACTIONS."""
    PREPARE_ABORT = (3, "PrepareAbort")
    """Abort decided, markers being written. Everything else: CONCURRENT_TRANSACTIONS."""
    COMPLETE_COMMIT = (4, "CompleteCommit")
    """Markers written. Like EMPTY; a retried commit EndTxn succeeds."""
    COMPLETE_ABORT = (5, "CompleteAbort")
    """Markers written. Like EMPTY; a retried abort EndTxn succeeds."""
    DEAD = (6, "Dead")
    """Expired; removed by the tombstone that follows."""
    PREPARE_EPOCH_FENCE = (7, "PrepareEpochFence")
    """Kafka's transient fencing state; strom goes straight to PREPARE_ABORT."""

    @property
    def status(self) -> int:
        return self.value[0]

    @property
    def display(self) -> str:
        return self.value[1]

    @classmethod
    def of_status(cls, status: int) -> TxnState:
        for state in cls:
            if state.status == status:
                return state
        raise ValueError(f"unknown transaction status {status}")

    @classmethod
    def of_display(cls, name: str) -> TxnState | None:
        for state in cls:
            if state.display == name:
                return state
        return None

    @property
    def is_complete_or_empty(self) -> bool:
        return self in (TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT)

    @property
    def is_prepare(self) -> bool:
        return self in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT,
                        TxnState.PREPARE_EPOCH_FENCE)


_S = TxnState
# Kafka's TransactionState.validPreviousStates, inverted; self-loops for
# epoch bumps (EMPTY) and added partitions (ONGOING).
TRANSITIONS: dict[TxnState, frozenset[TxnState]] = {
    _S.EMPTY: frozenset({_S.EMPTY, _S.ONGOING, _S.PREPARE_ABORT, _S.DEAD}),
    _S.ONGOING: frozenset({_S.ONGOING, _S.PREPARE_COMMIT, _S.PREPARE_ABORT,
                           _S.PREPARE_EPOCH_FENCE}),
    _S.PREPARE_COMMIT: frozenset({_S.COMPLETE_COMMIT}),
    _S.PREPARE_ABORT: frozenset({_S.COMPLETE_ABORT}),
    _S.COMPLETE_COMMIT: frozenset({_S.EMPTY, _S.ONGOING, _S.PREPARE_ABORT, _S.DEAD}),
    _S.COMPLETE_ABORT: frozenset({_S.EMPTY, _S.ONGOING, _S.PREPARE_ABORT, _S.DEAD}),
    _S.DEAD: frozenset(),
    _S.PREPARE_EPOCH_FENCE: frozenset({_S.PREPARE_ABORT}),
}

TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class TransactionMetadata:
    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState
    partitions: frozenset[TopicPartition] = frozenset()
    start_ms: int = -1
    last_update_ms: int = -1
    previous_producer_id: int = NO_PRODUCER_ID
    next_producer_id: int = NO_PRODUCER_ID
    # The epoch before the last bump, so a retried InitProducerId is recognised (KIP-360).
    last_producer_epoch: int = NO_EPOCH
    # 0/1: the client bumps nothing; 2: the epoch bumps at every transaction end (KIP-890).
    transaction_version: int = 0

    def transition(self, state: TxnState, **changes: object) -> TransactionMetadata:
        if state not in TRANSITIONS[self.state]:
            raise InvalidTxnStateError(
                f"transactional id {self.transactional_id}: illegal transition "
                f"{self.state.display} -> {state.display}")
        return dataclasses.replace(self, state=state, **changes)  # type: ignore[arg-type]
