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
`decompress` takes `max_size` and raises DecompressedSizeError past it
without producing more than that many bytes (plus one) of output. The
framing's declared sizes (`frames`) size the one output buffer up front:
corrupt data fails in one attempt, and a bomb made of declared sizes is
refused before anything is decompressed.
"""

from __future__ import annotations

import gzip
import mmap
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import cramjam

from strom.errors import CorruptRecordError, DecompressedSizeError
from strom.protocol.records.batch import Buffer, Compression
from strom.protocol.records.frames import (
    DEFLATE_MAX_RATIO,
    SizeRange,
    lz4_size_range,
    zstd_size_range,
)

__all__ = [
    "XERIAL_HEADER",
    "compress",
    "decompress",
    "decompress_view",
    "decompressed_size_bound",
]

XERIAL_MAGIC = b"\x82SNAPPY\x00"
#: Magic, version 1, minimum compatible version 1 -- what snappy-java writes.
XERIAL_HEADER = XERIAL_MAGIC + struct.pack(">ii", 1, 1)
XERIAL_BLOCK_SIZE = 32 * 1024  # snappy-java's default block size
_GZIP_LEVEL = 6  # java.util.zip default, which Kafka uses unless compression.gzip.level is set
_ZSTD_LEVEL = 3  # Kafka's default compression.zstd.level
_INT32 = struct.Struct(">i")
#: Snappy's best case is a 3-byte copy of 64 bytes; 22 leaves room for the
#: length prefix of tiny blocks.
_SNAPPY_MAX_RATIO = 22
_VARINT32_MAX = 5
#: Output buffers larger than this are anonymous mmaps (see decompress_view).
_MMAP_BYTES = 4 * 1024 * 1024
#: gzip output per zlib call: small enough that copying one chunk into the
#: output buffer (with the GIL) is brief.
_GZIP_CHUNK = 1024 * 1024


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
    data, DecompressedSizeError (a CorruptRecordError) if it would
    decompress to more than `max_size` bytes."""
    out = decompress_view(codec, data, max_size)
    return out if isinstance(out, bytes) else bytes(out)


def decompress_view(codec: Compression, data: Buffer,
                    max_size: int | None = None) -> bytes | memoryview:
    """As `decompress`, without copying the output into a bytes object: a
    view of the one buffer it was decompressed into. Large buffers are
    anonymous mmaps, so neither allocating nor copying them holds the GIL
    (bytearray(256 MiB) memsets for 105 ms; bytes() of it copies for 101 ms),
    and a worker thread decompressing a large batch leaves the event loop be."""
    if codec == Compression.NONE:
        _check_size(len(data), max_size)
        return memoryview(data)
    if codec == Compression.GZIP:
        return _gzip_decompress(data, max_size)
    if codec == Compression.SNAPPY:
        if len(data) >= len(XERIAL_HEADER) and bytes(data[:8]) == XERIAL_MAGIC:
            return _snappy_decompress(list(_xerial_blocks(data)), max_size)
        return _snappy_decompress([memoryview(data)], max_size)
    if codec == Compression.LZ4:
        return _bounded_frame_decompress(cramjam.lz4, "lz4", lz4_size_range(data), data,
                                         max_size)
    if codec == Compression.ZSTD:
        return _bounded_frame_decompress(cramjam.zstd, "zstd", zstd_size_range(data), data,
                                         max_size)
    raise CorruptRecordError(f"unknown compression codec {codec!r}")


def _check_size(size: int, max_size: int | None) -> None:
    if max_size is not None and size > max_size:
        raise DecompressedSizeError(f"decompressed records exceed {max_size} bytes")


def _output_buffer(size: int) -> memoryview:
    if size > _MMAP_BYTES:
        return memoryview(mmap.mmap(-1, size))
    return memoryview(bytearray(size))


def _gzip_decompress(data: Buffer, max_size: int | None) -> bytes | memoryview:
    """Each member inflated a chunk at a time (zlib releases the GIL while it
    inflates); past _MMAP_BYTES the chunks go into one mmap'd buffer, so no
    GIL-holding copy or allocation is ever large."""
    remaining = bytes(data)
    capacity = len(remaining) * DEFLATE_MAX_RATIO  # no valid data inflates more
    if max_size is not None:
        capacity = min(capacity, max_size + 1)
    parts: list[bytes] = []
    out: memoryview | None = None
    produced = 0
    while True:
        decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing only
        pending = remaining
        while not decompressor.eof:
            # max_length stops a bomb at max_size + 1 bytes.
            room = min(_GZIP_CHUNK, capacity - produced)
            try:
                chunk = decompressor.decompress(pending, room) if room else b""
            except zlib.error as exc:
                raise CorruptRecordError(f"invalid gzip data: {exc}") from None
            if out is None and produced + len(chunk) > _MMAP_BYTES:
                out = _output_buffer(capacity)
                out[:produced] = b"".join(parts)
                parts.clear()
            if out is None:
                parts.append(chunk)
            else:
                out[produced : produced + len(chunk)] = chunk
            produced += len(chunk)
            _check_size(produced, max_size)
            tail = decompressor.unconsumed_tail
            if not chunk and len(tail) == len(pending):
                raise CorruptRecordError("gzip data ends before the end of its stream")
            pending = tail
        remaining = decompressor.unused_data
        if not remaining:
            return b"".join(parts) if out is None else out[:produced]


def _xerial_compress(data: Buffer) -> bytes:
    view = memoryview(data)
    out = [XERIAL_HEADER]
    for start in range(0, len(view), XERIAL_BLOCK_SIZE):
        block = bytes(cramjam.snappy.compress_raw(bytes(view[start : start + XERIAL_BLOCK_SIZE])))
        out.append(_INT32.pack(len(block)))
        out.append(block)
    return b"".join(out)


def _snappy_raw_len(data: Buffer) -> int:
    """The uncompressed length a raw snappy block states up front."""
    try:
        size = int(cramjam.snappy.decompress_raw_len(bytes(data[:_VARINT32_MAX])))
    except Exception as exc:  # cramjam raises its own and builtin types
        raise CorruptRecordError(f"invalid snappy data: {exc}") from None
    # A 3-byte copy element yields at most 64 bytes: a block claiming more
    # than that ratio is damage, refused before its buffer is allocated.
    if size > len(data) * _SNAPPY_MAX_RATIO:
        raise CorruptRecordError(f"snappy block of {len(data)} bytes claims {size} bytes")
    return size


def _snappy_decompress(blocks: list[memoryview], max_size: int | None) -> memoryview:
    # Every declared length first: a bomb of many blocks is refused before
    # the first one is decompressed, and the output buffer is exact.
    sizes = [_snappy_raw_len(block) for block in blocks]
    total = sum(sizes)
    _check_size(total, max_size)
    out = _output_buffer(total)
    position = 0
    for block, size in zip(blocks, sizes, strict=True):
        try:
            written = int(cramjam.snappy.decompress_raw_into(block, out[position:position + size]))
        except Exception as exc:
            raise CorruptRecordError(f"invalid snappy data: {exc}") from None
        if written != size:
            raise CorruptRecordError(f"snappy block declares {size} bytes but holds {written}")
        position += size
    return out


def _xerial_blocks(data: Buffer) -> Iterator[memoryview]:
    """The raw snappy blocks of xerial framing (after its 16-byte header)."""
    view = memoryview(data)
    position = len(XERIAL_HEADER)
    while position < len(view):
        if len(view) - position < 4:
            raise CorruptRecordError("xerial snappy block length is truncated")
        (length,) = _INT32.unpack_from(view, position)
        position += 4
        if length < 0 or length > len(view) - position:
            raise CorruptRecordError(f"xerial snappy block length {length} is out of range")
        yield view[position : position + length]
        position += length


def decompressed_size_bound(codec: Compression, data: Buffer) -> int:
    """The most bytes `data` can decompress to, from its framing alone
    (see `frames`); CorruptRecordError if the framing is broken. Cheap: no
    byte is decompressed, so a caller can decide before paying for it."""
    if codec == Compression.NONE:
        return len(data)
    if codec == Compression.GZIP:
        return len(data) * DEFLATE_MAX_RATIO
    if codec == Compression.SNAPPY:
        if len(data) >= len(XERIAL_HEADER) and bytes(data[:8]) == XERIAL_MAGIC:
            return sum(_snappy_raw_len(block) for block in _xerial_blocks(data))
        return _snappy_raw_len(data)
    if codec == Compression.LZ4:
        return lz4_size_range(data).maximum
    if codec == Compression.ZSTD:
        return zstd_size_range(data).maximum
    raise CorruptRecordError(f"unknown compression codec {codec!r}")


def _bounded_frame_decompress(module: Any, name: str, declared: SizeRange, data: Buffer,
                              max_size: int | None) -> memoryview:
    """lz4/zstd frames into one buffer of the size their framing allows.

    The old way -- guess, and on any error retry with a buffer 8x larger up
    to max_size -- could not tell a short buffer from corrupt data, so a
    178-byte corrupt batch allocated and filled buffers up to 256 MiB, 0.4 s
    of event loop per batch (hardening #6). With the bound the decoder never
    lacks room: one attempt, and an error means the data is bad."""
    # Raw/RLE blocks and declared content sizes are what a bomb is made of;
    # they are refused here without decompressing anything.
    _check_size(declared.minimum, max_size)
    bound = declared.maximum
    size = bound if max_size is None else min(bound, max_size + 1)
    out = _output_buffer(size)
    try:
        written = int(module.decompress_into(memoryview(data), out))
    except Exception as exc:
        if size < bound:
            # Corrupt, or valid and larger than the buffer max_size allowed:
            # a caller with a larger limit may try again.
            raise DecompressedSizeError(
                f"invalid {name} data or more than {max_size} bytes: {exc}") from None
        raise CorruptRecordError(f"invalid {name} data: {exc}") from None
    _check_size(written, max_size)
    return out[:written]
