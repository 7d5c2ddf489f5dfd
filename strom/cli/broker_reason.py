"""Why the broker rejected a record, when the client library will not say.

A Produce response (v8+, KIP-467) carries the broker's reason for a rejected
batch: `error_message`, and `record_errors` naming each rejected record
("compacted topic cannot accept a record without a key"). librdkafka parses
them (rd_kafka_message_produce_errstr) but confluent-kafka's Python binding
does not pass them on (2.16: its delivery reports carry the error code only),
so `strom produce` would print nothing but "INVALID_RECORD".

For the errors that mean "failed the broker's validation, nothing written"
(REASON_CODES) the CLI asks once more: it sends that one record alone in a
Produce request of its own to the partition's leader and reads the reason
from the response. Validation depends only on the record and the topic's
configuration, so the record fails the same way; should the topic have
changed in between and the record be accepted, the answer says so and where
it was written.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from strom.cli.common import CliError
from strom.cli.raw_request import exchange, secure
from strom.protocol.api import ApiKey
from strom.protocol.records import RecordSpec, build_batch

#: Delivery errors whose reason the broker states in the Produce response.
REASON_CODES = frozenset({"INVALID_RECORD", "INVALID_TIMESTAMP"})
#: The first Produce version with error_message and record_errors, and the one used.
_PRODUCE_MIN, _PRODUCE_MAX = 8, 9
#: Largest response read: a Produce response for one record is tiny.
_MAX_RESPONSE = 1 << 20


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp: int


def broker_reason(record: RejectedRecord, leader: tuple[str, int],
                  timeout: float, config: Mapping[str, Any] | None = None) -> str | None:
    """The broker's own words for why it rejects `record`, or None if it
    gives none (or cannot be asked: too old, unreachable). `config`: the
    session's client settings (TLS, SASL)."""
    try:
        with socket.create_connection(leader, timeout=timeout) as plain:
            sock = secure(plain, leader[0], config or {})
            versions = exchange(sock, ApiKey.API_VERSIONS, 0, {}, _MAX_RESPONSE)
            produce = next((v for v in versions.api_keys if v.api_key == ApiKey.PRODUCE),
                           None)
            if produce is None or produce.max_version < _PRODUCE_MIN:
                return None
            version = min(produce.max_version, _PRODUCE_MAX)
            batch = build_batch([RecordSpec(key=record.key, value=record.value,
                                             headers=record.headers,
                                             timestamp=record.timestamp)])
            response = exchange(sock, ApiKey.PRODUCE, version, {
                "transactional_id": None, "acks": 1, "timeout": int(timeout * 1000),
                "topic_data": [{"name": record.topic, "partition_data": [
                    {"index": record.partition, "records": bytes(batch)}]}]}, _MAX_RESPONSE)
    except (OSError, ValueError, KeyError, struct.error, CliError):
        return None
    for topic in response.responses:
        for partition in topic.partition_responses:
            if partition.error_code == 0:
                return (f"accepted when sent again (offset {partition.base_offset}): the "
                        "topic's configuration must have changed meanwhile")
            reasons = [e.batch_index_error_message for e in partition.record_errors
                       if e.batch_index_error_message]
            if reasons:
                return "; ".join(dict.fromkeys(reasons))
            message: str | None = partition.error_message
            return message or None
    return None
