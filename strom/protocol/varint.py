"""Unsigned varints as the flexible protocol versions use them (sans-I/O)."""

from __future__ import annotations

from strom.errors import InvalidRequestError


def read_uvarint(buf: bytes | bytearray | memoryview, offset: int) -> tuple[int, int]:
    """(value, next offset). At most 5 bytes: Kafka's unsigned varints are 32-bit."""
    result = 0
    shift = 0
    for i in range(5):
        if offset + i >= len(buf):
            raise InvalidRequestError("truncated varint")
        byte = buf[offset + i]
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, offset + i + 1
        shift += 7
    raise InvalidRequestError("varint longer than 5 bytes")


def encode_uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
