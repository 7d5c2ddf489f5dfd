"""Typed exceptions, each carrying its Kafka error code.

Layers raise these; the handler boundary turns any exception into an error
code with `error_code_for`. An exception that is not a `KafkaError` is a bug
and becomes UNKNOWN_SERVER_ERROR (the caller logs its traceback).
"""

from __future__ import annotations

from kio.schema.errors import ErrorCode

__all__ = [
    "ErrorCode",
    "KafkaError",
    "CorruptRecordError",
    "DecompressedSizeError",
    "InvalidRecordError",
    "RecordTooLargeError",
    "RecordBatchTooLargeError",
    "InvalidTimestampError",
    "UnknownTopicOrPartitionError",
    "TopicAlreadyExistsError",
    "InvalidTopicError",
    "InvalidPartitionsError",
    "InvalidReplicationFactorError",
    "InvalidConfigError",
    "InvalidRequestError",
    "OffsetOutOfRangeError",
    "UnsupportedVersionError",
    "NotLeaderOrFollowerError",
    "FencedLeaderEpochError",
    "UnknownLeaderEpochError",
    "PolicyViolationError",
    "UnknownTopicIdError",
    "KafkaStorageError",
    "LogDirFullError",
    "LogFsyncFailedError",
    "InvalidRequiredAcksError",
    "RequestTimedOutError",
    "UnsupportedCompressionTypeError",
    "OutOfOrderSequenceError",
    "InvalidProducerEpochError",
    "ProducerFencedError",
    "CoordinatorNotAvailableError",
    "NotCoordinatorError",
    "InvalidReplicaAssignmentError",
    "NotControllerError",
    "NetworkError",
    "StaleBrokerEpochError",
    "NotEnoughReplicasError",
    "NotEnoughReplicasAfterAppendError",
    "InvalidUpdateVersionError",
    "IneligibleReplicaError",
    "ElectionNotNeededError",
    "PreferredLeaderNotAvailableError",
    "EligibleLeadersNotAvailableError",
    "TopicAuthorizationFailedError",
    "GroupAuthorizationFailedError",
    "ClusterAuthorizationFailedError",
    "TransactionalIdAuthorizationFailedError",
    "SaslAuthenticationError",
    "IllegalSaslStateError",
    "UnsupportedSaslMechanismError",
    "ResourceNotFoundError",
    "DuplicateResourceError",
    "UnacceptableCredentialError",
    "InvalidRecordStateError",
    "ShareSessionNotFoundError",
    "InvalidShareSessionEpochError",
    "ShareSessionLimitReachedError",
    "FencedStateEpochError",
    "error_code_for",
    "error_for_code",
]


class KafkaError(Exception):
    """An error with a Kafka protocol error code."""

    code: ErrorCode = ErrorCode.unknown_server_error

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code.name)
        self.message = message or None

    @property
    def retriable(self) -> bool:
        return bool(self.code.retriable)


class CorruptRecordError(KafkaError):
    code = ErrorCode.corrupt_message


class DecompressedSizeError(CorruptRecordError):
    """Compressed records would inflate past the limit they were decompressed
    with: CORRUPT_MESSAGE to the client, but the broker may retry off the
    event loop with a larger limit."""


class InvalidRecordError(KafkaError):
    code = ErrorCode.invalid_record


class RecordTooLargeError(KafkaError):
    code = ErrorCode.message_too_large


class RecordBatchTooLargeError(KafkaError):
    code = ErrorCode.record_list_too_large


class InvalidTimestampError(KafkaError):
    code = ErrorCode.invalid_timestamp


class UnknownTopicOrPartitionError(KafkaError):
    code = ErrorCode.unknown_topic_or_partition


class TopicAlreadyExistsError(KafkaError):
    code = ErrorCode.topic_already_exists


class InvalidTopicError(KafkaError):
    code = ErrorCode.invalid_topic_exception


class InvalidPartitionsError(KafkaError):
    code = ErrorCode.invalid_partitions


class InvalidReplicationFactorError(KafkaError):
    code = ErrorCode.invalid_replication_factor


class InvalidConfigError(KafkaError):
    code = ErrorCode.invalid_config


class InvalidRequestError(KafkaError):
    code = ErrorCode.invalid_request


class OffsetOutOfRangeError(KafkaError):
    code = ErrorCode.offset_out_of_range


class UnsupportedVersionError(KafkaError):
    code = ErrorCode.unsupported_version


class ThrottlingQuotaExceededError(KafkaError):
    """controller_mutation_rate spent (strom/broker/client_quotas.py)."""

    code = ErrorCode.throttling_quota_exceeded


class NotLeaderOrFollowerError(KafkaError):
    code = ErrorCode.not_leader_or_follower


class FencedLeaderEpochError(KafkaError):
    code = ErrorCode.fenced_leader_epoch


class UnknownLeaderEpochError(KafkaError):
    code = ErrorCode.unknown_leader_epoch


class PolicyViolationError(KafkaError):
    code = ErrorCode.policy_violation


class UnknownTopicIdError(KafkaError):
    code = ErrorCode.unknown_topic_id


class KafkaStorageError(KafkaError):
    code = ErrorCode.kafka_storage_error


class LogDirFullError(KafkaStorageError):
    """A write failed for lack of space (ENOSPC, EDQUOT); see storage/disk.py."""


class LogFsyncFailedError(KafkaStorageError):
    """An fsync of a partition's files failed with an I/O error (not ENOSPC):
    the kernel may have dropped the pages it covered, so a later fsync could
    succeed over lost data. The partition goes offline (storage/flush.py)."""


class InvalidRequiredAcksError(KafkaError):
    code = ErrorCode.invalid_required_acks


class RequestTimedOutError(KafkaError):
    code = ErrorCode.request_timed_out


class NotEnoughReplicasError(KafkaError):
    """acks=all to a partition whose ISR is smaller than min.insync.replicas:
    refused before the append."""

    code = ErrorCode.not_enough_replicas


class NotEnoughReplicasAfterAppendError(KafkaError):
    """acks=all: the batch was appended, but the ISR shrank below
    min.insync.replicas before it was replicated."""

    code = ErrorCode.not_enough_replicas_after_append


class NotControllerError(KafkaError):
    """This broker is not (or no longer) the controller: a deposed controller's
    metadata write is refused, and the client retries against the new one."""

    code = ErrorCode.not_controller


class NetworkError(KafkaError):
    """A request to another broker failed on the connection (refused, closed,
    reset): retriable, as Kafka's NetworkException."""

    code = ErrorCode.network_exception


class StaleBrokerEpochError(KafkaError):
    """A broker-to-controller request from a broker the controller does not
    know as registered (with that epoch)."""

    code = ErrorCode.stale_broker_epoch


class UnsupportedCompressionTypeError(KafkaError):
    code = ErrorCode.unsupported_compression_type


class OutOfOrderSequenceError(KafkaError):
    code = ErrorCode.out_of_order_sequence_number


class InvalidProducerEpochError(KafkaError):
    code = ErrorCode.invalid_producer_epoch


class InvalidTxnStateError(KafkaError):
    code = ErrorCode.invalid_txn_state


class ProducerFencedError(KafkaError):
    code = ErrorCode.producer_fenced


class CoordinatorNotAvailableError(KafkaError):
    code = ErrorCode.coordinator_not_available


class CoordinatorLoadInProgressError(KafkaError):
    code = ErrorCode.coordinator_load_in_progress


class NotCoordinatorError(KafkaError):
    code = ErrorCode.not_coordinator


class InvalidReplicaAssignmentError(KafkaError):
    code = ErrorCode.invalid_replica_assignment


class NoReassignmentInProgressError(KafkaError):
    """A cancellation (null replicas) of a partition that is not being reassigned."""

    code = ErrorCode.no_reassignment_in_progress


class InvalidUpdateVersionError(KafkaError):
    """An AlterPartition based on a partition epoch the controller has moved past."""

    code = ErrorCode.invalid_update_version


class IneligibleReplicaError(KafkaError):
    """An AlterPartition's new ISR names a broker that is not registered or is
    shutting down."""

    code = ErrorCode.ineligible_replica


class ElectionNotNeededError(KafkaError):
    code = ErrorCode.election_not_needed


class PreferredLeaderNotAvailableError(KafkaError):
    code = ErrorCode.preferred_leader_not_available


class EligibleLeadersNotAvailableError(KafkaError):
    code = ErrorCode.eligible_leaders_not_available


# The authorizer's denials (strom/broker/authorization.py says which request
# needs what), each under the code Kafka answers.
class TopicAuthorizationFailedError(KafkaError):
    code = ErrorCode.topic_authorization_failed


class GroupAuthorizationFailedError(KafkaError):
    code = ErrorCode.group_authorization_failed


class ClusterAuthorizationFailedError(KafkaError):
    code = ErrorCode.cluster_authorization_failed


class TransactionalIdAuthorizationFailedError(KafkaError):
    code = ErrorCode.transactional_id_authorization_failed


class SaslAuthenticationError(KafkaError):
    """SASL credentials were rejected; the message is what the client is told
    (it never says whether the user exists)."""

    code = ErrorCode.sasl_authentication_failed


class IllegalSaslStateError(KafkaError):
    """A SASL request out of order (SaslAuthenticate before SaslHandshake, ...)."""

    code = ErrorCode.illegal_sasl_state


class UnsupportedSaslMechanismError(KafkaError):
    code = ErrorCode.unsupported_sasl_mechanism


class ResourceNotFoundError(KafkaError):
    code = ErrorCode.resource_not_found


class DuplicateResourceError(KafkaError):
    code = ErrorCode.duplicate_resource


class UnacceptableCredentialError(KafkaError):
    code = ErrorCode.unacceptable_credential


class InvalidRecordStateError(KafkaError):
    """A share acknowledgement of records not acquired by the member (KIP-932)."""

    code = ErrorCode.invalid_record_state


class ShareSessionNotFoundError(KafkaError):
    code = ErrorCode.share_session_not_found


class InvalidShareSessionEpochError(KafkaError):
    code = ErrorCode.invalid_share_session_epoch


class ShareSessionLimitReachedError(KafkaError):
    code = ErrorCode.share_session_limit_reached


class FencedStateEpochError(KafkaError):
    """A share-state write or initialize with a state epoch older than the stored
    one: the group coordinator has re-initialized the state since (KIP-932)."""

    code = ErrorCode.fenced_state_epoch


def error_code_for(exc: BaseException) -> ErrorCode:
    """The error code a response carries for `exc`."""
    if isinstance(exc, KafkaError):
        return exc.code
    return ErrorCode.unknown_server_error


def error_for_code(code: int, message: str = "") -> KafkaError:
    """The typed exception for an error code another broker answered with (the
    controller, say), so that callers catch the same classes as for local
    errors. Codes without a class of their own become a plain KafkaError
    carrying the code."""
    cls = _BY_CODE.get(code)
    if cls is not None:
        return cls(message)
    error = KafkaError(message or ErrorCode(code).name)
    error.code = ErrorCode(code)
    return error


# The classes declared here, each under its code; a subclass that narrows its
# parent's meaning (LogDirFullError under KafkaStorageError) never wins.
_BY_CODE: dict[int, type[KafkaError]] = {}
for _cls in KafkaError.__subclasses__():
    if _cls.__module__ == __name__:
        _BY_CODE.setdefault(_cls.code, _cls)
