"""Walk a request's bytes by its kio schema before kio reads them.

kio's native reader trusts the counts it reads: an array count of 0xFFFFFFFF
makes it reserve room for four billion elements (a 34 GB allocation that
aborts the process, issue 13), and a null where the schema has a
non-nullable array reaches the handler as None. Kafka's generated readers
compare every count with the bytes left before allocating
(`MessageUtil`/`ByteBufferAccessor`: "Tried to allocate a collection of size
N, but there are only M bytes remaining"). This module does the same, without
building any object: every array count times its element's smallest encoding,
every string or bytes length and every tagged field's size must fit in the
bytes received; a null in a field the schema does not make nullable is
malformed. Anything else (UTF-8, enum values) is left to kio.

Unknown tagged fields are skipped, as Kafka skips them (KIP-482: newer
clients add optional data older brokers ignore), but kio's native reader
raises on a tag it does not know. So the walk raises _UnknownTag at the
first one, and only then `check_request` walks again collecting every
unknown field (tag, size and value) and hands kio a copy of the body
without them, each enclosing tag count (and the size of each known tagged
field that encloses a removed one) rewritten. The common path copies nothing
and costs the same (bench/request_check.py, within 0.05 us); a request with
unknown tags costs about 3 us more plus 0.6 us per tagged-field section
holding one (a 100-partition Fetch with one in every partition: 65 us).

It follows kio's reading rules (kio/serial/_introspect.py and kio's native
schema): arrays are compact in flexible versions and int32-counted
otherwise; a nullable struct starts with an int8 marker (-1 is null); tagged
fields are read as non-nullable values. A plan is compiled once per request
class: runs of fixed-size fields collapse into one bounds check, and arrays
of fixed-size elements are checked with one multiplication, so the walk
costs about a microsecond per request (bench/request_check.py: Metadata 0.4-0.9 us,
a one-partition Fetch 1.1 us, 100 partitions 6.9 us; kio's decode of the same
bytes 0.2-0.3, 1.2 and 12.6 us).
"""

from __future__ import annotations

import dataclasses
import functools
import struct
import threading
from collections.abc import Callable
from typing import Any, Final

from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    PrimitiveTupleField,
    classify_field,
    get_field_tag,
    get_schema_field_type,
    is_optional,
)
from kio.static.protocol import Entity

from strom.errors import InvalidRequestError
from strom.protocol.varint import encode_uvarint

Buffer = bytes | bytearray | memoryview
# walk(buf, pos, end) -> the position after the value; raises InvalidRequestError.
Walk = Callable[[Buffer, int, int], int]

_I16: Final = struct.Struct(">h")
_I32: Final = struct.Struct(">i")

# Encoded size of each fixed-size kafka_type kio knows.
_FIXED_SIZES: Final = {
    "bool": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "error_code": 2,
    "int32": 4, "uint32": 4, "timedelta_i32": 4, "int64": 8, "uint64": 8, "float64": 8,
    "timedelta_i64": 8, "datetime_i64": 8, "uuid": 16,
}


# (start, end, replacement): buf[start:end] becomes replacement in the copy kio reads.
Edit = tuple[int, int, bytes]


class _UnknownTag(Exception):
    """A tagged field kio would not know, met while not collecting edits."""


class _Collector(threading.local):
    # None: the walk raises _UnknownTag at the first unknown tag (the common
    # path pays nothing for the edits it never needs); a list: it collects them.
    edits: list[Edit] | None = None


_collector: Final = _Collector()


def check_entity(cls: type[Entity], buf: Buffer, offset: int) -> int:
    """Raise InvalidRequestError unless `buf[offset:]` starts with a `cls` whose
    counts, lengths and nulls are all sound; return where that entity ends.
    Unknown tagged fields are skipped by their size."""
    walk = _entity_plan(cls, False).walk
    try:
        return walk(buf, offset, len(buf))
    except _UnknownTag:
        return _walk_collecting(walk, buf, offset)[0]


def check_request(cls: type[Entity], buf: Buffer, offset: int) -> tuple[Buffer, int]:
    """check_entity for a body kio is about to read: the buffer and offset to
    read it from. The same ones unless the body holds tagged fields `cls` does
    not know; then a copy of the body without them, read from offset 0."""
    walk = _entity_plan(cls, False).walk
    try:
        walk(buf, offset, len(buf))
    except _UnknownTag:
        end, edits = _walk_collecting(walk, buf, offset)
        return splice(buf, offset, end, edits), 0
    return buf, offset


def _walk_collecting(walk: Walk, buf: Buffer, offset: int) -> tuple[int, list[Edit]]:
    edits: list[Edit] = []
    _collector.edits = edits
    try:
        return walk(buf, offset, len(buf)), edits
    finally:
        _collector.edits = None


def splice(buf: Buffer, start: int, end: int, edits: list[Edit]) -> bytes:
    """buf[start:end] with `edits` (disjoint ranges inside it) applied."""
    parts: list[Buffer] = []
    at = start
    for edit_start, edit_end, replacement in sorted(edits):
        parts.append(buf[at:edit_start])
        parts.append(replacement)
        at = edit_end
    parts.append(buf[at:end])
    return b"".join(parts)


def _malformed(what: str) -> InvalidRequestError:
    return InvalidRequestError(what)


def _uvarint(buf: Buffer, pos: int, end: int) -> tuple[int, int]:
    """An unsigned varint of at most 5 bytes, as Kafka's readUnsignedVarint."""
    result = 0
    shift = 0
    for i in range(pos, min(pos + 5, end)):
        byte = buf[i]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, i + 1
        shift += 7
    if end - pos < 5:
        raise _malformed("truncated varint")
    raise _malformed("varint longer than 5 bytes")


def _skip(size: int) -> Walk:
    def walk(buf: Buffer, pos: int, end: int) -> int:
        pos += size
        if pos > end:
            raise _malformed("request truncated")
        return pos
    return walk


def _compact_length(nullable: bool, what: str) -> Walk:
    """A compact string/bytes: uvarint length + 1, 0 for null."""
    def walk(buf: Buffer, pos: int, end: int) -> int:
        if pos < end and buf[pos] < 0x80:  # one-byte length: the common case
            n = buf[pos]
            pos += 1
        else:
            n, pos = _uvarint(buf, pos, end)
        if n == 0:
            if not nullable:
                raise _malformed(f"null {what} where the schema requires one")
            return pos
        pos += n - 1
        if pos > end:
            raise _malformed(f"{what} longer than the request")
        return pos
    return walk


def _legacy_length(nullable: bool, prefix: struct.Struct, what: str) -> Walk:
    """A legacy string (int16 length) or bytes (int32 length), -1 for null."""
    width = prefix.size

    def walk(buf: Buffer, pos: int, end: int) -> int:
        if pos + width > end:
            raise _malformed("request truncated")
        (n,) = prefix.unpack_from(buf, pos)
        pos += width
        if n < 0:
            if n != -1:
                raise _malformed(f"negative {what} length")
            if not nullable:
                raise _malformed(f"null {what} where the schema requires one")
            return pos
        pos += n
        if pos > end:
            raise _malformed(f"{what} longer than the request")
        return pos
    return walk


def _array(element: _Plan, nullable: bool, flexible: bool) -> Walk:
    element_size = max(element.min_size, 1)
    fixed = element.fixed
    walk_element = element.walk

    def walk(buf: Buffer, pos: int, end: int) -> int:
        if flexible:
            if pos < end and buf[pos] < 0x80:
                n = buf[pos] - 1
                pos += 1
            else:
                raw, pos = _uvarint(buf, pos, end)
                n = raw - 1
        else:
            if pos + 4 > end:
                raise _malformed("request truncated")
            (n,) = _I32.unpack_from(buf, pos)
            pos += 4
        if n < 0:
            if n != -1:
                raise _malformed("negative array length")
            if not nullable:
                raise _malformed("null array where the schema requires one")
            return pos
        # The check that keeps kio from reserving room for a count nobody sent.
        if n * element_size > end - pos:
            raise _malformed(f"array of {n} elements longer than the request")
        if fixed:
            return pos + n * element_size
        for _ in range(n):
            pos = walk_element(buf, pos, end)
        return pos
    return walk


@dataclasses.dataclass(frozen=True, slots=True)
class _Plan:
    """How to walk one value: `min_size` is its smallest encoding in bytes;
    `fixed` says every encoding has exactly that size."""

    walk: Walk
    min_size: int
    fixed: bool


def _primitive_plan(kafka_type: str, flexible: bool, nullable: bool) -> _Plan:
    size = _FIXED_SIZES.get(kafka_type)
    if size is not None:
        # Nullable fixed-size values (uuid, datetime_i64) are never shorter.
        return _Plan(_skip(size), size, True)
    if kafka_type == "string":
        if flexible:
            return _Plan(_compact_length(nullable, "string"), 1, False)
        return _Plan(_legacy_length(nullable, _I16, "string"), 2, False)
    if kafka_type in ("bytes", "records"):
        if flexible:
            return _Plan(_compact_length(nullable, kafka_type), 1, False)
        return _Plan(_legacy_length(nullable, _I32, kafka_type), 4, False)
    raise TypeError(f"no check for kafka_type {kafka_type!r}")


def _field_plan(field: dataclasses.Field[Any], flexible: bool, tagged: bool) -> _Plan:
    field_class = classify_field(field)
    # kio reads tagged primitives with non-nullable readers (their absence is
    # their null), and nullability of a primitive array belongs to the array.
    nullable = is_optional(field)
    element: _Plan
    if isinstance(field_class, EntityTupleField):
        element = _entity_plan(field_class.type_, False)
    elif isinstance(field_class, EntityField):
        return _entity_plan(field_class.type_, nullable)
    elif isinstance(field_class, PrimitiveTupleField):
        element = _primitive_plan(get_schema_field_type(field), flexible, False)
    else:
        return _primitive_plan(get_schema_field_type(field), flexible, nullable and not tagged)
    min_size = 1 if flexible else 4
    return _Plan(_array(element, nullable, flexible), min_size, False)


def _sequence(steps: list[_Plan]) -> Walk:
    """One walk for consecutive fields; adjacent fixed-size fields become one skip."""
    merged: list[Walk] = []
    run = 0
    for step in steps:
        if step.fixed:
            run += step.min_size
            continue
        if run:
            merged.append(_skip(run))
            run = 0
        merged.append(step.walk)
    if run:
        merged.append(_skip(run))
    walks = tuple(merged)
    if len(walks) == 1:
        return walks[0]

    def walk(buf: Buffer, pos: int, end: int) -> int:
        for step in walks:
            pos = step(buf, pos, end)
        return pos
    return walk


def _tagged_fields(tags: dict[int, Walk]) -> Walk:
    def walk(buf: Buffer, pos: int, end: int) -> int:
        if pos < end and buf[pos] == 0:  # no tagged fields: the common case
            return pos + 1
        count_at = pos
        if pos < end and buf[pos] < 0x80:
            count = buf[pos]
            pos += 1
        else:
            count, pos = _uvarint(buf, pos, end)
        count_end = pos
        if count > end - pos:  # each takes at least two bytes
            raise _malformed("more tagged fields than the request holds")
        edits = _collector.edits
        first_edit = len(edits) if edits is not None else 0
        known = 0
        for _ in range(count):
            field_at = pos
            # One-byte tags and sizes inline: a section of many fields walks in
            # half the time (bench/request_check.py).
            if pos < end and buf[pos] < 0x80:
                tag = buf[pos]
                pos += 1
            else:
                tag, pos = _uvarint(buf, pos, end)
            size_at = pos
            if pos < end and buf[pos] < 0x80:
                size = buf[pos]
                pos += 1
            else:
                size, pos = _uvarint(buf, pos, end)
            if size > end - pos:
                raise _malformed(f"tagged field {tag} longer than the request")
            walk_tag = tags.get(tag)
            if walk_tag is None:
                # Skipped by size, as Kafka does; kio cannot, so it gets a copy without it.
                if edits is None:
                    raise _UnknownTag
                edits.append((field_at, pos + size, b""))
                pos += size
                continue
            known += 1
            inner = len(edits) if edits is not None else 0
            # A known tag must fill exactly its declared size: kio reads it by its schema.
            if walk_tag(buf, pos, pos + size) != pos + size:
                raise _malformed(f"tagged field {tag} does not match its size")
            if edits is not None and len(edits) > inner:
                # Unknown tags removed inside this one's value (a tagged struct) shrink it.
                removed = sum(e - s - len(r) for s, e, r in edits[inner:])
                edits.append((size_at, pos, encode_uvarint(size - removed)))
            pos += size
        if known != count:  # only when collecting: the others raised _UnknownTag
            assert edits is not None
            if known == 0:  # the usual case: one edit empties the whole section
                del edits[first_edit:]
                edits.append((count_at, pos, b"\x00"))
            else:
                edits.append((count_at, count_end, encode_uvarint(known)))
        return pos
    return walk


def _fixed_then_tags(size: int, tagged_fields: Walk) -> Walk:
    def walk(buf: Buffer, pos: int, end: int) -> int:
        pos += size
        if pos < end and buf[pos] == 0:
            return pos + 1
        if pos > end:
            raise _malformed("request truncated")
        return tagged_fields(buf, pos, end)
    return walk


@functools.cache
def _entity_plan(cls: type[Entity], nullable: bool) -> _Plan:
    flexible = bool(cls.__flexible__)
    steps: list[_Plan] = []
    tags: dict[int, Walk] = {}
    for field in dataclasses.fields(cls):
        tag = get_field_tag(field)
        if tag is None:
            steps.append(_field_plan(field, flexible, tagged=False))
        else:
            tags[int(tag)] = _field_plan(field, flexible, tagged=True).walk
    min_size = sum(step.min_size for step in steps)
    fixed = all(step.fixed for step in steps) and not flexible
    body: Walk
    if flexible and all(step.fixed for step in steps):
        # Most flexible structs (a Fetch partition, a topic id) are fixed fields
        # and no tags: one bounds check and one byte test.
        body = _fixed_then_tags(min_size, _tagged_fields(tags))
        min_size += 1
    elif flexible:
        steps.append(_Plan(_tagged_fields(tags), 1, False))
        min_size += 1
        body = _sequence(steps)
    else:
        body = _sequence(steps) if steps else _skip(0)
    if not nullable:
        return _Plan(body, min_size, fixed)

    def walk_nullable(buf: Buffer, pos: int, end: int) -> int:
        if pos >= end:
            raise _malformed("request truncated")
        # KIP-893 marker: -1 is null; kio reads anything else as present.
        if buf[pos] == 0xFF:
            return pos + 1
        return body(buf, pos + 1, end)
    return _Plan(walk_nullable, 1, False)
