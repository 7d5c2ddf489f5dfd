"""The group coordinator's errors, each carrying its Kafka error code.

The ones strom.errors does not define yet; they belong there once another
layer needs them.
"""

from __future__ import annotations

from strom.errors import (
    CoordinatorNotAvailableError,
    ErrorCode,
    InvalidRequestError,
    KafkaError,
    NotCoordinatorError,
    UnknownTopicIdError,
    UnknownTopicOrPartitionError,
    UnsupportedVersionError,
)

__all__ = [
    "CoordinatorNotAvailableError",
    "NotCoordinatorError",
    "UnknownMemberIdError",
    "IllegalGenerationError",
    "RebalanceInProgressError",
    "FencedInstanceIdError",
    "GroupIdNotFoundError",
    "NonEmptyGroupError",
    "InvalidGroupIdError",
    "InvalidSessionTimeoutError",
    "InconsistentGroupProtocolError",
    "GroupMaxSizeReachedError",
    "MemberIdRequiredError",
    "GroupSubscribedToTopicError",
    "OffsetMetadataTooLargeError",
    "FencedMemberEpochError",
    "StaleMemberEpochError",
    "UnreleasedInstanceIdError",
    "UnsupportedAssignorError",
    "InvalidRegularExpressionError",
    "UnknownTopicOrPartitionError",
    "UnknownTopicIdError",
    "InvalidRequestError",
    "UnsupportedVersionError",
]


class UnknownMemberIdError(KafkaError):
    code = ErrorCode.unknown_member_id


class IllegalGenerationError(KafkaError):
    code = ErrorCode.illegal_generation


class RebalanceInProgressError(KafkaError):
    code = ErrorCode.rebalance_in_progress


class FencedInstanceIdError(KafkaError):
    code = ErrorCode.fenced_instance_id


class GroupIdNotFoundError(KafkaError):
    code = ErrorCode.group_id_not_found


class NonEmptyGroupError(KafkaError):
    code = ErrorCode.non_empty_group


class InvalidGroupIdError(KafkaError):
    code = ErrorCode.invalid_group_id


class InvalidSessionTimeoutError(KafkaError):
    code = ErrorCode.invalid_session_timeout


class InconsistentGroupProtocolError(KafkaError):
    code = ErrorCode.inconsistent_group_protocol


class GroupMaxSizeReachedError(KafkaError):
    code = ErrorCode.group_max_size_reached


class MemberIdRequiredError(KafkaError):
    code = ErrorCode.member_id_required


class GroupSubscribedToTopicError(KafkaError):
    code = ErrorCode.group_subscribed_to_topic


class OffsetMetadataTooLargeError(KafkaError):
    code = ErrorCode.offset_metadata_too_large


class FencedMemberEpochError(KafkaError):
    code = ErrorCode.fenced_member_epoch


class StaleMemberEpochError(KafkaError):
    code = ErrorCode.stale_member_epoch


class UnreleasedInstanceIdError(KafkaError):
    code = ErrorCode.unreleased_instance_id


class UnsupportedAssignorError(KafkaError):
    code = ErrorCode.unsupported_assignor


class InvalidRegularExpressionError(KafkaError):
    code = ErrorCode.invalid_regular_expression
