"""Typed requests in, typed responses out, for any version kio knows.

Handlers answer in one version-independent shape: plain dicts and lists keyed
by the schema's field names (snake_case, as kio names them). `build` turns
that shape into the kio class of the version the client asked for: fields
the version lacks are dropped, fields the shape omits take the schema's
default. Integers are accepted for error codes, millisecond durations and
timestamps. So a handler is written once, not once per version.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import io
import struct
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from kio.schema.errors import ErrorCode
from kio.serial import entity_reader, entity_writer
from kio.static.protocol import Entity, RequestPayload

from strom.errors import InvalidRequestError
from strom.protocol.api import ApiKey, request_class, response_class, response_header_version
from strom.protocol.fast.fetch import Chunk, encode_fetch_response
from strom.protocol.fast.metadata_response import encode_metadata_response
from strom.protocol.fast.produce import parse_produce_request
from strom.protocol.fast.produce_response import encode_produce_response
from strom.protocol.headers import encode_response_header
from strom.protocol.request_check import check_request

Converter = Callable[[Any], Any]
E = typing.TypeVar("E", bound=Entity)

PRODUCE = ApiKey.PRODUCE
FETCH = ApiKey.FETCH
METADATA = ApiKey.METADATA
_SIZE = struct.Struct(">i")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _identity(value: Any) -> Any:
    return value


def _to_error_code(value: Any) -> ErrorCode:
    return value if isinstance(value, ErrorCode) else ErrorCode(int(value))


def _to_timedelta(value: Any) -> datetime.timedelta:
    if isinstance(value, datetime.timedelta):
        return value
    return datetime.timedelta(milliseconds=int(value))


def _to_datetime(value: Any) -> datetime.datetime | None:
    if value is None or isinstance(value, datetime.datetime):
        return value
    if int(value) < 0:
        return None
    return _EPOCH + datetime.timedelta(milliseconds=int(value))


def _to_required_datetime(value: Any) -> datetime.datetime:
    """A non-nullable timestamp field: Kafka's -1 ("none", e.g. a transaction not
    started) is written as -1, not as null, which the field cannot hold."""
    if isinstance(value, datetime.datetime):
        return value
    return _EPOCH + datetime.timedelta(milliseconds=int(value))


@dataclasses.dataclass(frozen=True, slots=True)
class _FieldPlan:
    name: str
    convert: Converter
    required: bool


def _nested_entity(hint: Any) -> tuple[Any, bool]:
    """(entity class, is_sequence) if the hint is a nested entity or a tuple of them."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = typing.get_args(hint)
        if args and dataclasses.is_dataclass(args[0]):
            return args[0], True
        return None, False
    if origin in (typing.Union, types.UnionType):
        # Nullable: `X | None` or `tuple[X, ...] | None`.
        for arg in typing.get_args(hint):
            if arg is not type(None):
                nested = _nested_entity(arg)
                if nested[0] is not None:
                    return nested
        return None, False
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return hint, False
    return None, False


def _is_nullable(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and \
        type(None) in typing.get_args(hint)


@functools.cache
def _plan(cls: type[Entity]) -> tuple[_FieldPlan, ...]:
    hints = typing.get_type_hints(cls)
    plans = []
    for f in dataclasses.fields(cls):
        kafka_type = f.metadata.get("kafka_type")
        hint = hints[f.name]
        nested, is_sequence = _nested_entity(hint)
        convert: Converter
        if nested is not None and is_sequence:
            convert = functools.partial(_build_many, nested)
        elif nested is not None:
            convert = functools.partial(_build_optional, nested)
        elif kafka_type == "error_code":
            convert = _to_error_code
        elif kafka_type in ("timedelta_i32", "timedelta_i64"):
            convert = _to_timedelta
        elif kafka_type == "datetime_i64" and _is_nullable(hint):
            convert = _to_datetime
        elif kafka_type == "datetime_i64":
            convert = _to_required_datetime
        elif typing.get_origin(hint) is tuple:
            convert = tuple
        else:
            convert = _identity
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        plans.append(_FieldPlan(f.name, convert, required))
    return tuple(plans)


def _build_many(cls: type[Entity], items: Any) -> Any:
    if items is None:
        return None
    return tuple(build(cls, item) for item in items)


def _build_optional(cls: type[Entity], item: Any) -> Any:
    return None if item is None else build(cls, item)


def build(cls: type[E], data: Mapping[str, Any] | E) -> E:
    """An instance of `cls` from a version-independent dict (see module doc)."""
    if isinstance(data, cls):
        return data
    if dataclasses.is_dataclass(data):
        data = {f.name: getattr(data, f.name) for f in dataclasses.fields(data)}
    kwargs: dict[str, Any] = {}
    for plan in _plan(cls):
        if plan.name in data:
            kwargs[plan.name] = plan.convert(data[plan.name])
        elif plan.required:
            raise KeyError(f"{cls.__qualname__} v{cls.__version__} needs field {plan.name!r}")
    return cls(**kwargs)


def decode_request(
    api_key: int, api_version: int, frame: bytes | bytearray | memoryview, offset: int
) -> RequestPayload:
    """The request body as its kio class (or a measured fast path's equivalent).
    Malformed bytes raise InvalidRequestError."""
    if api_key == PRODUCE:
        return parse_produce_request(api_version, frame, offset)  # type: ignore[return-value]
    cls = request_class(api_key, api_version)
    view = memoryview(frame).toreadonly()
    # kio allocates by the counts it reads, maps null arrays to None even
    # where the schema forbids them and refuses tags it does not know: walk
    # the bytes by the schema first (a copy without unknown tags if any).
    body, offset = check_request(cls, view, offset)
    try:
        request, size = entity_reader(cls)(body, offset)
    except InvalidRequestError:
        raise
    except Exception as exc:  # kio raises assorted errors on malformed input
        raise InvalidRequestError(f"malformed {cls.__name__}: {exc}") from None
    # Trailing bytes are ignored, as Kafka does: librdkafka 2.x pads some
    # Metadata requests with extra bytes (librdkafka issue 5049).
    return request


def encode_response_frame(
    api_key: int, api_version: int, correlation_id: int, payload: Mapping[str, Any] | Entity
) -> list[Chunk]:
    """A whole response frame (size prefix, header, body) as chunks for writelines;
    record data is passed through without copying where a fast path exists."""
    # type() first: isinstance against the Mapping ABC is two Python-level calls.
    if api_key == FETCH and (type(payload) is dict or isinstance(payload, Mapping)):
        chunks = encode_fetch_response(api_version, correlation_id, payload)
    elif api_key == PRODUCE and (type(payload) is dict or isinstance(payload, Mapping)):
        body = encode_produce_response(api_version, correlation_id, payload)
        return [_SIZE.pack(len(body)), body]
    elif api_key == METADATA and (type(payload) is dict or isinstance(payload, Mapping)):
        body = encode_metadata_response(api_version, correlation_id, payload)
        return [_SIZE.pack(len(body)), body]
    else:
        chunks = [encode_response(api_key, api_version, correlation_id, payload, fast=False)]
    size = sum(len(c) for c in chunks)
    return [_SIZE.pack(size), *chunks]


def encode_response(
    api_key: int, api_version: int, correlation_id: int, payload: Mapping[str, Any] | Entity,
    *, fast: bool = True,
) -> bytes:
    """Header and body of a response, without the size prefix. `fast=False` forces
    kio's encoder (the reference the fast paths are tested against)."""
    if fast and api_key == FETCH and isinstance(payload, Mapping):
        return b"".join(encode_fetch_response(api_version, correlation_id, payload))
    if fast and api_key == PRODUCE and isinstance(payload, Mapping):
        return encode_produce_response(api_version, correlation_id, payload)
    if fast and api_key == METADATA and isinstance(payload, Mapping):
        return encode_metadata_response(api_version, correlation_id, payload)
    cls = response_class(api_key, api_version)
    message: Any = build(cls, payload)
    out = io.BytesIO()
    out.write(encode_response_header(correlation_id, response_header_version(api_key, api_version)))
    entity_writer(cls)(out, message)
    return out.getvalue()


def to_millis(value: datetime.timedelta | int) -> int:
    if isinstance(value, datetime.timedelta):
        return round(value.total_seconds() * 1000)
    return int(value)


def timestamp_millis(value: datetime.datetime | int | None) -> int:
    if value is None:
        return -1
    if isinstance(value, datetime.datetime):
        return round(value.timestamp() * 1000)
    return int(value)


ZERO_UUID = uuid.UUID(int=0)
