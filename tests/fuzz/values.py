"""Request values drawn from kio's schemas, from a seeded random.Random.

One generator serves the hypothesis properties (fed `st.randoms()`) and the
fuzzer (fed its own seeded Random, a million times faster than drawing from
hypothesis strategies). Values lean towards what breaks decoders: empty and
null collections, edge integers, empty and non-ASCII strings.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import io
import random
import struct
import uuid
from collections.abc import Callable
from typing import Any

from kio.schema.errors import ErrorCode
from kio.serial import entity_writer
from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    PrimitiveTupleField,
    classify_field,
    get_field_tag,
    get_schema_field_type,
    is_optional,
)

from strom.protocol.api import request_class, request_header_version

Draw = Callable[[random.Random], Any]

_INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1), "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1),
    "uint8": (0, 2**8 - 1), "uint16": (0, 2**16 - 1), "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
}
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_ERROR_CODES = list(ErrorCode)
_TEXT = ["", "t", "topic-0", "__consumer_offsets", "ü", "a" * 300, ".", "x\n", "\x00"]


def _int_draw(low: int, high: int) -> Draw:
    edges = [v for v in (0, 1, -1, low, high, 2) if low <= v <= high]

    def draw(rng: random.Random) -> int:
        if rng.random() < 0.5:
            return rng.choice(edges)
        return rng.randint(low, high)
    return draw


def _fresh_text(rng: random.Random) -> str:
    return "".join(chr(rng.randint(32, 0x2FF)) for _ in range(rng.randint(0, 12)))


# Names come mostly from a fixed pool, so that a million requests create a
# bounded number of groups, transactional ids and topics (state Kafka keeps too).
_POOL = _TEXT + [_fresh_text(random.Random(i)) for i in range(200)]


def _text(rng: random.Random) -> str:
    if rng.random() < 0.97:
        return rng.choice(_POOL)
    return _fresh_text(rng)


def _bytes(rng: random.Random) -> bytes:
    return rng.randbytes(rng.choice((0, 1, 8, rng.randint(0, 200))))


def _primitive(kafka_type: str) -> Draw:
    if kafka_type in _INT_RANGES:
        return _int_draw(*_INT_RANGES[kafka_type])
    if kafka_type == "bool":
        return lambda rng: rng.random() < 0.5
    if kafka_type == "float64":
        return lambda rng: rng.choice((0.0, -1.0, 1e300, rng.random()))
    if kafka_type == "string":
        return _text
    if kafka_type in ("bytes", "records"):
        return _bytes
    if kafka_type == "uuid":
        return lambda rng: uuid.UUID(int=rng.getrandbits(128) | 1)
    if kafka_type == "error_code":
        return lambda rng: rng.choice(_ERROR_CODES)
    if kafka_type in ("timedelta_i32", "timedelta_i64"):
        high = 2**31 - 1 if kafka_type == "timedelta_i32" else 2**40
        ms = _int_draw(-1, high)
        return lambda rng: datetime.timedelta(milliseconds=ms(rng))
    if kafka_type == "datetime_i64":
        return lambda rng: _EPOCH + datetime.timedelta(milliseconds=rng.randint(0, 2**42))
    raise TypeError(kafka_type)


def _nullable(draw: Draw) -> Draw:
    return lambda rng: None if rng.random() < 0.15 else draw(rng)


def _array(draw: Draw) -> Draw:
    def draw_array(rng: random.Random) -> tuple[Any, ...]:
        n = rng.choice((0, 1, 1, 2, 3))
        return tuple(draw(rng) for _ in range(n))
    return draw_array


def _field(field: dataclasses.Field[Any], tagged: bool) -> Draw:
    field_class = classify_field(field)
    nullable = is_optional(field)
    draw: Draw
    if isinstance(field_class, EntityTupleField):
        draw = _array(entity_draw(field_class.type_))
    elif isinstance(field_class, EntityField):
        draw = entity_draw(field_class.type_)
    elif isinstance(field_class, PrimitiveTupleField):
        draw = _array(_primitive(get_schema_field_type(field)))
    else:
        draw = _primitive(get_schema_field_type(field))
        # kio writes tagged primitives with non-nullable writers.
        nullable = nullable and not tagged
    return _nullable(draw) if nullable else draw


@functools.cache
def entity_draw(cls: type[Any]) -> Callable[[random.Random], Any]:
    """A function drawing a random, encodable instance of the kio class `cls`."""
    fields = [(f.name, _field(f, get_field_tag(f) is not None), get_field_tag(f) is not None)
              for f in dataclasses.fields(cls)]

    def draw(rng: random.Random) -> Any:
        kwargs = {}
        for name, draw_field, tagged in fields:
            # A tagged field left out is written as absent, the usual case.
            if tagged and rng.random() < 0.5:
                continue
            kwargs[name] = draw_field(rng)
        return cls(**kwargs)
    return draw


def encode_body(cls: type[Any], value: Any) -> bytes:
    out = io.BytesIO()
    entity_writer(cls)(out, value)
    return out.getvalue()


def encode_frame(api_key: int, version: int, correlation_id: int, body: bytes,
                 client_id: str | None = "fuzz") -> bytes:
    """A request frame, size prefix included, around an encoded body."""
    header = struct.pack(">hhi", api_key, version, correlation_id)
    header_version = request_header_version(api_key, version)
    if header_version >= 1:
        if client_id is None:
            header += struct.pack(">h", -1)
        else:
            raw = client_id.encode()
            header += struct.pack(">h", len(raw)) + raw
    if header_version >= 2:
        header += b"\x00"
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def random_request(api_key: int, version: int, rng: random.Random) -> bytes:
    """The encoded body of a schema-drawn request."""
    cls = request_class(api_key, version)
    return encode_body(cls, entity_draw(cls)(rng))
