"""Errors of the views toolkit.

Client-library exceptions (confluent-kafka's `KafkaException`) are translated
here, at the boundary, into these types, so that callers handle one family.
`retriable` says whether trying again later can succeed.
"""

from __future__ import annotations


class ViewsError(Exception):
    """Base class of every error raised by `strom.views`."""

    retriable = False


class EventError(ViewsError):
    """An event could not be encoded or decoded."""


class UnknownEventType(EventError):
    """A record names an event type the registry does not know."""


class UnknownEventVersion(EventError):
    """A record's schema version is newer than the registered type, or an
    upcaster between two versions is missing."""


class StoreError(ViewsError):
    """The view's local store refused an operation."""


class BrokerUnavailable(ViewsError):
    """The cluster did not answer within the deadline.

    The view keeps serving its last consistent state; the message says what
    was being waited for and for how long."""

    retriable = True


class CatchUpTimeout(ViewsError):
    """A view did not reach its target offsets before the deadline.

    `lag` maps (topic, partition) to the records still to apply."""

    retriable = True

    def __init__(self, message: str, lag: dict[tuple[str, int], int]) -> None:
        super().__init__(message)
        self.lag = lag


class ViewFailed(ViewsError):
    """The view stopped because a handler (or the store) raised; the batch that
    raised was rolled back, so the store holds the state before it."""


class ViewClosed(ViewsError):
    """The view was stopped; it can no longer catch up."""


class PublishError(ViewsError):
    """A record was not acknowledged by the cluster."""

    def __init__(self, message: str, *, retriable: bool = False) -> None:
        super().__init__(message)
        self.retriable = retriable


class TransactionsUnsupported(ViewsError, NotImplementedError):
    """The cluster does not support Kafka transactions (InitProducerId with a
    transactional.id, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit,
    EndTxn and the transaction coordinator behind them).

    Raised at once when the cluster's ApiVersions lacks those APIs. Without
    transactions, use the default idempotent publisher and the view's outbox,
    which give exactly-once effects without broker transactions."""
