"""Request and response headers.

Request header v0: api_key int16, api_version int16, correlation_id int32.
v1 adds client_id (a nullable int16-length string, even in flexible versions).
v2 adds tagged fields (flexible versions). Response header v0 is the
correlation id; v1 adds an (empty) tagged-field section.

Parsed by hand: the header must be read before the body's schema is known,
and the first eight bytes are enough to answer even a request we cannot parse.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from strom.errors import InvalidRequestError
from strom.protocol.varint import read_uvarint

_FIXED = struct.Struct(">hhi")
_INT16 = struct.Struct(">h")


# Not frozen: a frozen dataclass's __init__ sets each field through
# object.__setattr__, ~0.07 us a field; made once per request or more (issue 19).
@dataclass(slots=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


def peek_header(frame: bytes | bytearray | memoryview) -> tuple[int, int, int]:
    """(api_key, api_version, correlation_id) from a frame's first 8 bytes."""
    if len(frame) < _FIXED.size:
        raise InvalidRequestError("request shorter than its header")
    api_key, api_version, correlation_id = _FIXED.unpack_from(frame, 0)
    return api_key, api_version, correlation_id


def parse_request_header(
    frame: bytes | bytearray | memoryview, header_version: int
) -> tuple[RequestHeader, int]:
    """The header and the offset at which the body starts."""
    if _fast_header is not None:
        parsed = _fast_header(frame, header_version)
        if parsed is not None:
            return parsed
    return parse_request_header_python(frame, header_version)


def parse_request_header_python(
    frame: bytes | bytearray | memoryview, header_version: int
) -> tuple[RequestHeader, int]:
    """The reference parser: the C one (strom/protocol/fast/_produce.c) accepts
    what this one accepts with the same result, and leaves every error to it."""
    api_key, api_version, correlation_id = peek_header(frame)
    offset = _FIXED.size
    client_id: str | None = None
    if header_version >= 1:
        if len(frame) < offset + 2:
            raise InvalidRequestError("truncated client id")
        (length,) = _INT16.unpack_from(frame, offset)
        offset += 2
        if length >= 0:
            if len(frame) < offset + length:
                raise InvalidRequestError("truncated client id")
            try:
                client_id = bytes(frame[offset : offset + length]).decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidRequestError("client id is not UTF-8") from None
            offset += length
        elif length != -1:
            raise InvalidRequestError("negative client id length")
    if header_version >= 2:
        count, offset = read_uvarint(frame, offset)
        for _ in range(count):
            _tag, offset = read_uvarint(frame, offset)
            size, offset = read_uvarint(frame, offset)
            if offset + size > len(frame):
                raise InvalidRequestError("truncated header tagged field")
            offset += size  # no request header tags are defined that a broker reads
    return RequestHeader(api_key, api_version, correlation_id, client_id), offset


_FastHeader = Callable[[bytes | bytearray | memoryview, int], tuple[RequestHeader, int] | None]
_fast_header: _FastHeader | None
try:  # built from strom/protocol/fast/_produce.c when a C compiler was there at install time
    from strom.protocol.fast._produce import parse_request_header as _fast_header
    from strom.protocol.fast._produce import setup_header
except ImportError:  # pragma: no cover - installs without a compiler
    _fast_header = None
else:
    setup_header(RequestHeader)

_RESPONSE_V0 = struct.Struct(">i")


def encode_response_header(correlation_id: int, header_version: int) -> bytes:
    if header_version == 0:
        return _RESPONSE_V0.pack(correlation_id)
    return _RESPONSE_V0.pack(correlation_id) + b"\x00"
