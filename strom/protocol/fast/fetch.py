"""FetchResponse encoder that never copies record data.

kio's writer is pure Python and copies the records into its output buffer;
profiling a consumer reading from the page cache put 45% of the broker's time
in kio's writers. This encoder builds the small framing around each
partition's records and returns a list of chunks in which the record bytes
are the very buffers read from the segment files (on uvloop, views of mappings
of them), for one `writelines`. It takes only their lengths: it must never read
them (a mapped view of a since-truncated file faults when read).
Byte for byte it matches kio's FetchResponse for v4-v18 as strom fills it
(no tagged fields set but a follower's `diverging_epoch`, tag 0;
tests/protocol/test_fast_fetch.py).
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from strom.protocol.varint import encode_uvarint

FLEXIBLE_FROM = 12
TOPIC_ID_FROM = 13

Chunk = bytes | bytearray | memoryview

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_TOP = struct.Struct(">ihi")  # throttle_time, error_code, session_id (v7+)
_PARTITION = struct.Struct(">ihqq")  # index, error, high watermark, last stable offset
_I64 = struct.Struct(">q")
_ABORTED = struct.Struct(">qq")
_ZERO_UUID = bytes(16)
# One tagged field, tag 0 (diverging_epoch), of 13 bytes: epoch, end offset,
# and the struct's own empty tagged fields.
_DIVERGING = struct.Struct(">BBBiqB")
# A partition with no records, no aborted transactions and no diverging epoch
# (most of a fetch over many partitions), v12+: index, error, high watermark,
# last stable offset, log start offset, aborted (null: 0), preferred read
# replica, records length (empty: 1), tagged fields (none: 0), in one pack.
_QUIET_FLEXIBLE = struct.Struct(">ihqqqBiBB")


def _length(n: int, flexible: bool) -> bytes:
    """An array or bytes length; -1 for null."""
    if flexible:
        return encode_uvarint(n + 1)
    return _I32.pack(n)


def _string(text: str, flexible: bool) -> bytes:
    raw = text.encode()
    if flexible:
        return encode_uvarint(len(raw) + 1) + raw
    return _I16.pack(len(raw)) + raw


def encode_fetch_response(version: int, correlation_id: int,
                          response: Mapping[str, Any]) -> list[Chunk]:
    """Header and body as chunks (no size prefix). Partition `records` may be
    bytes or a sequence of byte chunks (concatenated on the wire)."""
    flexible = version >= FLEXIBLE_FROM
    head = bytearray(_I32.pack(correlation_id))
    if flexible:
        head += b"\x00"  # response header v1: no tagged fields
    if version >= 7:
        head += _TOP.pack(int(response.get("throttle_time", 0)),
                          int(response.get("error_code", 0)),
                          int(response.get("session_id", 0)))
    else:
        head += _I32.pack(int(response.get("throttle_time", 0)))
    chunks: list[Chunk] = []
    topics: Sequence[Mapping[str, Any]] = response["responses"]
    head += _length(len(topics), flexible)
    for topic in topics:
        if version >= TOPIC_ID_FROM:
            topic_id: uuid.UUID | None = topic.get("topic_id")
            head += topic_id.bytes if topic_id is not None else _ZERO_UUID
        else:
            head += _string(topic["topic"], flexible)
        partitions: Sequence[Mapping[str, Any]] = topic["partitions"]
        head += _length(len(partitions), flexible)
        for p in partitions:
            records = p.get("records")
            if flexible and records is not None and not records \
                    and p.get("aborted_transactions") is None and "diverging_epoch" not in p:
                # No int(): struct packs an ErrorCode (an IntEnum) as it is.
                head += _QUIET_FLEXIBLE.pack(
                    p["partition_index"], p["error_code"], p["high_watermark"],
                    p["last_stable_offset"], p["log_start_offset"], 0,
                    p.get("preferred_read_replica", -1), 1, 0)
                continue
            head += _PARTITION.pack(int(p["partition_index"]), int(p["error_code"]),
                                    p["high_watermark"], p["last_stable_offset"])
            if version >= 5:
                head += _I64.pack(p["log_start_offset"])
            aborted = p.get("aborted_transactions")
            if aborted is None:
                head += _length(-1, flexible)
            else:
                head += _length(len(aborted), flexible)
                for txn in aborted:
                    head += _ABORTED.pack(txn["producer_id"], txn["first_offset"])
                    if flexible:
                        head += b"\x00"
            if version >= 11:
                head += _I32.pack(int(p.get("preferred_read_replica", -1)))
            if records is None:
                head += _length(-1, flexible)
            else:
                parts = [records] if isinstance(records, bytes | bytearray | memoryview) \
                    else list(records)
                head += _length(sum(len(part) for part in parts), flexible)
                nonempty = [part for part in parts if len(part)]
                if nonempty:
                    chunks.append(bytes(head))
                    chunks.extend(nonempty)
                    head = bytearray()
            if flexible:
                diverging = p.get("diverging_epoch")
                if diverging is None:
                    head += b"\x00"  # partition tagged fields: none
                else:
                    head += _DIVERGING.pack(1, 0, 13, diverging["epoch"],
                                            diverging["end_offset"], 0)
        if flexible:
            head += b"\x00"  # topic tagged fields
    if flexible:
        head += b"\x00"  # top-level tagged fields
    chunks.append(bytes(head))
    return chunks
