"""Declared sizes of compressed data, read from its framing without decompressing.

A compressed batch states how large it will become only indirectly: an lz4
frame is a list of blocks none of which may inflate past the frame's block
maximum size; a zstd frame is a list of blocks whose headers give the raw and
RLE sizes exactly and cap a compressed block at min(window, 128 KiB), and may
state its content size; a raw snappy block starts with its length; deflate
cannot exceed 1032:1 (a 258-byte match per two bits at best, RFC 1951).
Summing those gives the range of the output before a byte is decompressed:
its minimum (raw and RLE blocks, declared content sizes -- what a bomb is
made of) lets the caller refuse a bomb outright, and its maximum sizes the
one buffer anything else is decompressed into, so a decoder never has reason
to ask for more room and a failure is corruption, never "try a bigger buffer".

Formats: lz4 frame format 1.6.x (lz4/doc/lz4_Frame_format.md), zstd RFC 8878
section 3.1. Checksums are not verified here: the batch's CRC32C already
covers every byte, and the decoder checks what it reads.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import NamedTuple

from strom.errors import CorruptRecordError
from strom.protocol.records.batch import Buffer

__all__ = ["DEFLATE_MAX_RATIO", "SizeRange", "lz4_size_range", "zstd_size_range"]

#: RFC 1951: the best deflate can do is a 258-byte match per (at least) two
#: bits, 1032:1; zlib's own documentation gives the same figure.
DEFLATE_MAX_RATIO = 1032

_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")
_U64 = struct.Struct("<Q")

_LZ4_MAGIC = 0x184D2204
_SKIPPABLE_MASK = 0xFFFFFFF0
_SKIPPABLE_MAGIC = 0x184D2A50  # shared by lz4 and zstd
#: BD byte bits 6-4: 4 -> 64 KiB ... 7 -> 4 MiB.
_LZ4_BLOCK_MAX = {4: 64 << 10, 5: 256 << 10, 6: 1 << 20, 7: 4 << 20}
_LZ4_UNCOMPRESSED_BIT = 0x80000000
#: An lz4 sequence turns at most one input byte into 255 output bytes (a
#: match-length extension byte); measured: 4 MiB of zeros -> 16,459 bytes, 254.8:1.
_LZ4_MAX_RATIO = 255

_ZSTD_MAGIC = 0xFD2FB528
_ZSTD_BLOCK_MAX = 128 << 10
_ZSTD_DICT_ID_BYTES = (0, 1, 2, 4)
_ZSTD_FCS_BYTES = (0, 2, 4, 8)  # flag 0 means 1 byte in single-segment mode
_ZSTD_RAW, _ZSTD_RLE, _ZSTD_COMPRESSED = 0, 1, 2


def _need(view: memoryview, position: int, count: int, what: str) -> None:
    if position + count > len(view):
        raise CorruptRecordError(f"{what} is truncated")


def _skip_skippable(view: memoryview, position: int, name: str) -> int:
    _need(view, position, 8, f"{name} skippable frame")
    length: int = _U32.unpack_from(view, position + 4)[0]
    end = position + 8 + length
    if end > len(view):
        raise CorruptRecordError(f"{name} skippable frame is truncated")
    return end


class SizeRange(NamedTuple):
    """What the framing says about the decompressed size: at least `minimum`
    (raw blocks, declared content sizes), at most `maximum`."""

    minimum: int
    maximum: int


# (position after the frame, least and most it decompresses to, declared content size)
_Frame = tuple[int, int, int, int | None]


def _size_range(data: Buffer, name: str, magic: int,
                frame: Callable[[memoryview, int], _Frame]) -> SizeRange:
    """Sum `frame`'s ranges over the `name` frames in `data`, skipping
    skippable frames; a frame's declared content size must lie within what
    its blocks can hold, and then is exact."""
    view = memoryview(data)
    position = 0
    minimum = maximum = 0
    if not len(view):
        raise CorruptRecordError(f"empty {name} data")
    while position < len(view):
        _need(view, position, 4, f"{name} frame")
        (found,) = _U32.unpack_from(view, position)
        if found & _SKIPPABLE_MASK == _SKIPPABLE_MAGIC:
            position = _skip_skippable(view, position, name)
            continue
        if found != magic:
            raise CorruptRecordError(f"invalid {name} frame magic {found:#010x}")
        position, frame_min, frame_max, content_size = frame(view, position)
        if content_size is not None:
            if not frame_min <= content_size <= frame_max:
                raise CorruptRecordError(f"{name} frame declares {content_size} bytes but its "
                                         f"blocks hold {frame_min} to {frame_max}")
            frame_min = frame_max = content_size
        minimum += frame_min
        maximum += frame_max
    return SizeRange(minimum, maximum)


def lz4_size_range(data: Buffer) -> SizeRange:
    """How many bytes the lz4 frames in `data` can decompress to.

    Raises CorruptRecordError for anything that is not a sequence of whole
    lz4 frames (Kafka's KafkaLZ4BlockInputStream reads the same format)."""
    return _size_range(data, "lz4", _LZ4_MAGIC, _lz4_frame)


def _lz4_frame(view: memoryview, position: int) -> _Frame:
    """One lz4 frame from its magic at `position`."""
    _need(view, position, 7, "lz4 frame header")
    flags, block_descriptor = view[position + 4], view[position + 5]
    if flags >> 6 != 1:
        raise CorruptRecordError(f"unsupported lz4 frame version {flags >> 6}")
    block_max = _LZ4_BLOCK_MAX.get((block_descriptor >> 4) & 7)
    if block_max is None or flags & 0x02 or block_descriptor & 0x8F:
        raise CorruptRecordError("invalid lz4 frame descriptor")
    block_checksum = 4 if flags & 0x10 else 0
    position += 6
    content_size: int | None = None
    if flags & 0x08:
        _need(view, position, 8, "lz4 frame header")
        (content_size,) = _U64.unpack_from(view, position)
        position += 8
    if flags & 0x01:
        position += 4  # dictionary id
    position += 1  # header checksum
    frame_min = frame_max = 0
    while True:
        _need(view, position, 4, "lz4 block")
        (word,) = _U32.unpack_from(view, position)
        position += 4
        if word == 0:  # end mark
            break
        size = word & ~_LZ4_UNCOMPRESSED_BIT
        if size > block_max:
            raise CorruptRecordError(f"lz4 block of {size} bytes exceeds its frame's "
                                     f"maximum of {block_max}")
        _need(view, position, size + block_checksum, "lz4 block")
        position += size + block_checksum
        if word & _LZ4_UNCOMPRESSED_BIT:
            frame_min += size
            frame_max += size
        else:
            frame_max += min(block_max, size * _LZ4_MAX_RATIO)
    if flags & 0x04:
        _need(view, position, 4, "lz4 content checksum")
        position += 4
    return position, frame_min, frame_max, content_size


def zstd_size_range(data: Buffer) -> SizeRange:
    """How many bytes the zstd frames in `data` can decompress to (exact when
    every frame declares its content size or holds only raw/RLE blocks).

    Raises CorruptRecordError for anything that is not a sequence of whole
    zstd (or skippable) frames."""
    return _size_range(data, "zstd", _ZSTD_MAGIC, _zstd_frame)


def _zstd_frame(view: memoryview, position: int) -> _Frame:
    """One zstd frame from its magic at `position`."""
    _need(view, position, 5, "zstd frame header")
    descriptor = view[position + 4]
    position += 5
    fcs_flag, single_segment = descriptor >> 6, bool(descriptor & 0x20)
    if descriptor & 0x08:
        raise CorruptRecordError("zstd frame header sets a reserved bit")
    window: int | None = None
    if not single_segment:
        _need(view, position, 1, "zstd frame header")
        window_descriptor = view[position]
        position += 1
        window_log = 10 + (window_descriptor >> 3)
        window = (1 << window_log) + ((1 << window_log) >> 3) * (window_descriptor & 7)
    position += _ZSTD_DICT_ID_BYTES[descriptor & 3]
    fcs_bytes = 1 if fcs_flag == 0 and single_segment else _ZSTD_FCS_BYTES[fcs_flag]
    content_size: int | None = None
    _need(view, position, fcs_bytes, "zstd frame header")
    if fcs_bytes == 1:
        content_size = view[position]
    elif fcs_bytes == 2:
        content_size = _U16.unpack_from(view, position)[0] + 256
    elif fcs_bytes == 4:
        content_size = _U32.unpack_from(view, position)[0]
    elif fcs_bytes == 8:
        content_size = _U64.unpack_from(view, position)[0]
    position += fcs_bytes
    if window is None:
        window = content_size if content_size is not None else 0
    block_max = min(window, _ZSTD_BLOCK_MAX)
    frame_min = frame_max = 0
    while True:
        _need(view, position, 3, "zstd block header")
        header = view[position] | view[position + 1] << 8 | view[position + 2] << 16
        position += 3
        last, block_type, size = header & 1, (header >> 1) & 3, header >> 3
        if size > block_max:
            raise CorruptRecordError(f"zstd block of {size} bytes exceeds its frame's "
                                     f"maximum of {block_max}")
        if block_type == _ZSTD_RAW:
            consumed, least, most = size, size, size
        elif block_type == _ZSTD_RLE:
            consumed, least, most = 1, size, size
        elif block_type == _ZSTD_COMPRESSED:
            consumed, least, most = size, 0, block_max
        else:
            raise CorruptRecordError("zstd block has the reserved type")
        _need(view, position, consumed, "zstd block")
        position += consumed
        frame_min += least
        frame_max += most
        if last:
            break
    if descriptor & 0x04:
        _need(view, position, 4, "zstd content checksum")
        position += 4
    return position, frame_min, frame_max, content_size
