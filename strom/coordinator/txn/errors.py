"""Error codes as each API version knows them."""

from __future__ import annotations

from strom.errors import ErrorCode, KafkaError


def for_version(code: ErrorCode, version: int, fenced_since: int) -> ErrorCode:
    """PRODUCER_FENCED (KIP-588) is INVALID_PRODUCER_EPOCH to versions before `fenced_since`."""
    if code == ErrorCode.producer_fenced and version < fenced_since:
        return ErrorCode.invalid_producer_epoch
    return code


class TransactionNotVerifiedError(KafkaError):
    """The coordinator could not verify a produce (loading, moving): retriable,
    answered as Kafka does (NOT_ENOUGH_REPLICAS), which every client retries."""

    code = ErrorCode.not_enough_replicas
    retriable = True
