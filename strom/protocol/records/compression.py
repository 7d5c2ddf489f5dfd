"""Batch compression codecs: gzip, snappy, lz4 (frame format), zstd.

What clients write, and therefore what `decompress` reads:

- gzip: RFC 1952 members (the Java client writes one; concatenated members
  are read as GZIPInputStream does).
- snappy: the Java client writes xerial framing -- the 16-byte header
  ``\\x82SNAPPY\\x00`` + int32 version + int32 compatible version, then
  ``[int32 length][raw snappy block]`` repeated; librdkafka writes one raw
  snappy block. Both are read; `compress` writes xerial framing, which every
  client reads.
- lz4: the LZ4 frame format with independent blocks (Kafka's
  Lz4BlockInputStream cannot follow linked blocks, so `compress` never writes
  them).
- zstd: one or more zstd frames.

Decompression is the one place a small input becomes a large allocation, so
`decompress` takes `max_size` and raises CorruptRecordError past it without
producing more than that many bytes (plus one) of output.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from typing import Any

import cramjam

from strom.errors import CorruptRecordError
from strom.protocol.records.batch import Buffer, Compression

__all__ = ["XERIAL_HEADER", "compress", "decompress"]

XERIAL_MAGIC = b"\x82SNAPPY\x00"
#: Magic, version 1, minimum compatible version 1 -- what snappy-java writes.
XERIAL_HEADER = XERIAL_MAGIC + struct.pack(">ii", 1, 1)
XERIAL_BLOCK_SIZE = 32 * 1024  # snappy-java's default block size
_GZIP_LEVEL = 6  # java.util.zip default, which Kafka uses unless compression.gzip.level is set
_ZSTD_LEVEL = 3  # Kafka's default compression.zstd.level
_INT32 = struct.Struct(">i")
#: First guess for the output of an lz4/zstd frame whose size is unknown:
#: a few times the input covers ordinary data in one pass.
_MIN_GUESS = 64 * 1024
_GROWTH = 8


def compress(codec: Compression, data: Buffer) -> bytes:
    """`data` compressed with `codec`, in the framing Kafka clients read."""
    if codec == Compression.NONE:
        return bytes(data)
    if codec == Compression.GZIP:
        # mtime=0 keeps the output a function of the input alone.
        return gzip.compress(data, compresslevel=_GZIP_LEVEL, mtime=0)
    if codec == Compression.SNAPPY:
        return _xerial_compress(data)
    if codec == Compression.LZ4:
        compressor = cramjam.lz4.Compressor(block_linked=False, content_checksum=False)
        compressor.compress(bytes(data))
        return bytes(compressor.finish())
    if codec == Compression.ZSTD:
        return bytes(cramjam.zstd.compress(bytes(data), level=_ZSTD_LEVEL))
    raise ValueError(f"unknown compression codec {codec!r}")


def decompress(codec: Compression, data: Buffer, max_size: int | None = None) -> bytes:
    """`data` decompressed; CorruptRecordError if it is not valid `codec`
    data or would decompress to more than `max_size` bytes."""
    if codec == Compression.NONE:
        _check_size(len(data), max_size)
        return bytes(data)
    if codec == Compression.GZIP:
        return _gzip_decompress(data, max_size)
    if codec == Compression.SNAPPY:
        if len(data) >= len(XERIAL_HEADER) and bytes(data[:8]) == XERIAL_MAGIC:
            return _xerial_decompress(data, max_size)
        return _snappy_raw_decompress(data, max_size)
    if codec == Compression.LZ4:
        return _bounded_frame_decompress(cramjam.lz4, "lz4", data, max_size)
    if codec == Compression.ZSTD:
        return _bounded_frame_decompress(cramjam.zstd, "zstd", data, max_size)
    raise CorruptRecordError(f"unknown compression codec {codec!r}")


def _check_size(size: int, max_size: int | None) -> None:
    if max_size is not None and size > max_size:
        raise CorruptRecordError(f"decompressed records exceed {max_size} bytes")


def _gzip_decompress(data: Buffer, max_size: int | None) -> bytes:
    parts: list[bytes] = []
    produced = 0
    remaining = bytes(data)
    while True:
        decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing only
        # max_length bounds the output of this call, so a bomb stops at
        # max_size + 1 bytes instead of filling memory.
        limit = 0 if max_size is None else max_size - produced + 1
        try:
            part = decompressor.decompress(remaining, limit)
        except zlib.error as exc:
            raise CorruptRecordError(f"invalid gzip data: {exc}") from None
        produced += len(part)
        _check_size(produced, max_size)
        if not decompressor.eof:
            raise CorruptRecordError("gzip data ends before the end of its stream")
        parts.append(part)
        remaining = decompressor.unused_data
        if not remaining:
            return b"".join(parts)


def _xerial_compress(data: Buffer) -> bytes:
    view = memoryview(data)
    out = [XERIAL_HEADER]
    for start in range(0, len(view), XERIAL_BLOCK_SIZE):
        block = bytes(cramjam.snappy.compress_raw(bytes(view[start : start + XERIAL_BLOCK_SIZE])))
        out.append(_INT32.pack(len(block)))
        out.append(block)
    return b"".join(out)


def _snappy_raw_decompress(data: Buffer, max_size: int | None, produced: int = 0) -> bytes:
    block = bytes(data)
    try:
        # The raw format states its uncompressed length up front: check it
        # before allocating anything.
        size = int(cramjam.snappy.decompress_raw_len(block))
    except Exception as exc:  # cramjam raises its own and builtin types
        raise CorruptRecordError(f"invalid snappy data: {exc}") from None
    _check_size(produced + size, max_size)
    try:
        return bytes(cramjam.snappy.decompress_raw(block))
    except Exception as exc:
        raise CorruptRecordError(f"invalid snappy data: {exc}") from None


def _xerial_decompress(data: Buffer, max_size: int | None) -> bytes:
    view = memoryview(data)
    position = len(XERIAL_HEADER)
    parts: list[bytes] = []
    produced = 0
    while position < len(view):
        if len(view) - position < 4:
            raise CorruptRecordError("xerial snappy block length is truncated")
        (length,) = _INT32.unpack_from(view, position)
        position += 4
        if length < 0 or length > len(view) - position:
            raise CorruptRecordError(f"xerial snappy block length {length} is out of range")
        part = _snappy_raw_decompress(view[position : position + length], max_size, produced)
        produced += len(part)
        parts.append(part)
        position += length
    return b"".join(parts)


def _bounded_frame_decompress(module: Any, name: str, data: Buffer, max_size: int | None) -> bytes:
    """lz4/zstd frames need not state their content size, so the output is
    decompressed into buffers of growing size, capped at max_size + 1."""
    source = bytes(data)
    if max_size is None:
        try:
            return bytes(module.decompress(source))
        except Exception as exc:
            raise CorruptRecordError(f"invalid {name} data: {exc}") from None
    cap = max_size + 1
    size = min(cap, max(_MIN_GUESS, len(source) * _GROWTH))
    while True:
        out = bytearray(size)
        try:
            written = int(module.decompress_into(source, out))
        except Exception as exc:
            # cramjam reports a too-small output buffer and bad data alike;
            # grow until the cap, then call it what it is.
            if size < cap:
                size = min(cap, size * _GROWTH)
                continue
            raise CorruptRecordError(
                f"invalid {name} data or more than {max_size} bytes decompressed: {exc}"
            ) from None
        _check_size(written, max_size)
        del out[written:]
        return bytes(out)
