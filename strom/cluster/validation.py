"""Checks every metadata store applies to a client's operation, before it
computes records: Kafka's topic name rules and the controller's bounds on one
operation. Handlers run the per-request ones (a whole request is refused at
once); stores run the per-topic ones."""

from __future__ import annotations

import re

from strom.errors import InvalidTopicError, PolicyViolationError

# fullmatch, never match with "$": "$" also matches before a final "\n", and a
# topic "evil\n" made a directory whose name broke every checkpoint file.
_LEGAL_TOPIC = re.compile(r"[a-zA-Z0-9._-]+")
MAX_TOPIC_NAME_LENGTH = 249
MAX_PARTITIONS = 100_000
#: The request field is an int16, as in Kafka; in practice the registered
#: brokers bound it. Internal topics take min(their setting, the registered
#: brokers): 3 in a cluster of three or more, 1 on a single node.
MAX_REPLICATION_FACTOR = 32767
#: Kafka's QuorumController.MAX_RECORDS_PER_USER_OP: the metadata records one
#: client operation (a whole CreateTopics or CreatePartitions request) may
#: produce. A topic of N partitions is 1 + N records (+ one per config), so
#: 10,000 partitions in one request are refused, as in Kafka.
MAX_RECORDS_PER_USER_OP = 10_000
#: Kafka's ReplicationControlManager.MAX_PARTITIONS_PER_BATCH: partitions one
#: CreateTopics request may ask for, checked before anything else.
MAX_PARTITIONS_PER_BATCH = 10_000


def check_records_per_user_op(count: int) -> None:
    """Refuse an operation of more than MAX_RECORDS_PER_USER_OP records, with
    the message Kafka's controller gives (BoundedListTooLongException turned
    into a PolicyViolationException for the whole request)."""
    if count > MAX_RECORDS_PER_USER_OP:
        raise PolicyViolationError("Unable to perform excessively large batch operation.")


def check_partitions_per_request(count: int) -> None:
    """Kafka's validateTotalNumberOfPartitions for one CreateTopics request."""
    if count > MAX_PARTITIONS_PER_BATCH:
        raise PolicyViolationError("Excessively large number of partitions per request.")


def validate_topic_name(name: str) -> None:
    """Kafka's topic name rules (Topic.validate)."""
    if not name:
        raise InvalidTopicError("Topic name is illegal, it can't be empty")
    if name in (".", ".."):
        raise InvalidTopicError("Topic name cannot be \".\" or \"..\"")
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        raise InvalidTopicError(
            f"Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LENGTH} characters"
        )
    if not _LEGAL_TOPIC.fullmatch(name):
        raise InvalidTopicError(
            f"Topic name \"{name}\" is illegal, it contains a character other than "
            "ASCII alphanumerics, '.', '_' and '-'"
        )
