"""MetadataResponse encoder: struct packs instead of kio's generic writer.

A Metadata answer carries every partition of the topics asked for, and clients
ask after every CreateTopics and CreatePartitions (and refresh periodically,
often for every topic): through kio a topic of 1,000 partitions took ~6 ms to
build and write (~5.5 us a partition), a sixth of a 1,000-partition
CreatePartitions until the client sees the leaders; this takes ~0.6 ms.
Byte for byte it matches kio for v0-v13 as the Metadata handler fills it (no
tagged fields set; fields a version lacks are dropped and fields the shape
omits take the schema's defaults, as `messages.build` does;
tests/protocol/test_fast_metadata_response.py).
"""

from __future__ import annotations

import datetime
import struct
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from strom.protocol.varint import encode_uvarint

__all__ = ["encode_metadata_response"]

FLEXIBLE_FROM = 9

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_PARTITION_HEAD = struct.Struct(">hii")  # error code, index, leader
_PARTITION_HEAD_EPOCH = struct.Struct(">hiii")  # ... and the leader epoch (v7+)
_ZERO_UUID = bytes(16)
_OPERATIONS_OMITTED = -(2**31)
#: Compact lengths of one byte (0..126 elements), by count.
_SHORT_LENGTHS = [bytes((n + 1,)) for n in range(126)]
_EMPTY_INTS = (b"\x01", b"\x00\x00\x00\x00")  # compact, classic


def _length(n: int, flexible: bool) -> bytes:
    if flexible:
        return _SHORT_LENGTHS[n] if n < 126 else encode_uvarint(n + 1)
    return _I32.pack(n)


def _string(text: str | None, flexible: bool) -> bytes:
    if text is None:
        return b"\x00" if flexible else b"\xff\xff"
    raw = text.encode()
    if flexible:
        return _length(len(raw), True) + raw
    return _I16.pack(len(raw)) + raw


def _ints(values: Sequence[int], flexible: bool) -> bytes:
    n = len(values)
    if not n:
        return _EMPTY_INTS[0] if flexible else _EMPTY_INTS[1]
    return _length(n, flexible) + struct.pack(f">{n}i", *values)


def _millis(value: datetime.timedelta | int) -> int:
    if isinstance(value, datetime.timedelta):
        return round(value.total_seconds() * 1000)
    return int(value)


def _partitions(out: bytearray, partitions: Sequence[Mapping[str, Any]], version: int,
                flexible: bool) -> None:
    out += _length(len(partitions), flexible)
    epoch = version >= 7
    offline = version >= 5
    head = _PARTITION_HEAD_EPOCH if epoch else _PARTITION_HEAD
    # The replica lists repeat from partition to partition (a topic's
    # partitions spread over a few brokers): each distinct list of each of
    # the three fields is encoded once, with the tags after the last.
    tail = b"\x00" if flexible else b""
    lists: dict[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]], bytes] = {}
    for p in partitions:
        if epoch:
            out += head.pack(int(p["error_code"]), p["partition_index"], p["leader_id"],
                             p.get("leader_epoch", -1))
        else:
            out += head.pack(int(p["error_code"]), p["partition_index"], p["leader_id"])
        key = (tuple(p.get("replica_nodes", ())), tuple(p.get("isr_nodes", ())),
               tuple(p.get("offline_replicas", ())) if offline else ())
        encoded = lists.get(key)
        if encoded is None:
            encoded = lists[key] = b"".join([
                _ints(key[0], flexible), _ints(key[1], flexible),
                _ints(key[2], flexible) if offline else b"", tail])
        out += encoded


def encode_metadata_response(version: int, correlation_id: int,
                             response: Mapping[str, Any]) -> bytes:
    """Header and body (no size prefix) of the Metadata response `response`
    (the handler's version-independent shape) in `version`."""
    flexible = version >= FLEXIBLE_FROM
    out = bytearray(_I32.pack(correlation_id))
    if flexible:
        out += b"\x00"
    if version >= 3:
        out += _I32.pack(_millis(response["throttle_time"]))
    brokers: Sequence[Mapping[str, Any]] = response["brokers"]
    out += _length(len(brokers), flexible)
    for b in brokers:
        out += _I32.pack(b["node_id"])
        out += _string(b["host"], flexible)
        out += _I32.pack(b["port"])
        if version >= 1:
            out += _string(b.get("rack"), flexible)
        if flexible:
            out += b"\x00"
    if version >= 2:
        out += _string(response.get("cluster_id"), flexible)
    if version >= 1:
        out += _I32.pack(response.get("controller_id", -1))
    topics: Sequence[Mapping[str, Any]] = response["topics"]
    out += _length(len(topics), flexible)
    for t in topics:
        out += _I16.pack(int(t["error_code"]))
        out += _string(t["name"], flexible)
        if version >= 10:
            topic_id: uuid.UUID | None = t["topic_id"]
            out += topic_id.bytes if topic_id is not None else _ZERO_UUID
        if version >= 1:
            out += b"\x01" if t.get("is_internal", False) else b"\x00"
        _partitions(out, t["partitions"], version, flexible)
        if version >= 8:
            out += _I32.pack(t.get("topic_authorized_operations", _OPERATIONS_OMITTED))
        if flexible:
            out += b"\x00"
    if 8 <= version <= 10:
        out += _I32.pack(response.get("cluster_authorized_operations", _OPERATIONS_OMITTED))
    if version >= 13:
        out += _I16.pack(int(response["error_code"]))
    if flexible:
        out += b"\x00"
    return bytes(out)
