"""Bounded decompression (hardening #6): declared sizes read from the framing,
corrupt frames refused without growing buffers, bombs refused before their
output is produced, and for valid data the bounded path equals the plain one.

The reference decoders are other implementations (python-lz4, zstandard,
python-snappy, zlib), so the frames cover what other encoders write:
content sizes, block and content checksums, other block sizes, multiple frames.
"""

from __future__ import annotations

import gzip
import os
import struct
import time
import zlib

import cramjam
import lz4.frame
import pytest
import snappy
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strom.errors import CorruptRecordError
from strom.protocol.records import Compression, compress, decompress
from strom.protocol.records.compression import decompressed_size_bound
from strom.protocol.records.frames import lz4_size_range, zstd_size_range

MiB = 1024 * 1024

payloads = st.one_of(
    st.binary(max_size=3000),
    st.builds(lambda chunk, n: chunk * n, st.binary(min_size=1, max_size=64),
              st.integers(1, 5000)),
    st.builds(lambda a, b: a + bytes(b) + a, st.binary(max_size=500), st.integers(0, 300_000)),
)


def _lz4(data: bytes, block_size: int, content_size: bool, block_checksum: bool,
         content_checksum: bool) -> bytes:
    return bytes(lz4.frame.compress(
        data, block_size=block_size, block_linked=False, store_size=content_size,
        content_checksum=content_checksum, block_checksum=block_checksum))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads, st.sampled_from([lz4.frame.BLOCKSIZE_MAX64KB, lz4.frame.BLOCKSIZE_MAX256KB,
                                  lz4.frame.BLOCKSIZE_MAX1MB, lz4.frame.BLOCKSIZE_MAX4MB]),
       st.booleans(), st.booleans(), st.booleans(), st.integers(1, 3))
def test_lz4_bounded_equals_plain(data: bytes, block_size: int, content_size: bool,
                                  block_checksum: bool, content_checksum: bool,
                                  frames: int) -> None:
    framed = _lz4(data, block_size, content_size, block_checksum, content_checksum) * frames
    plain = data * frames
    declared = lz4_size_range(framed)
    assert declared.minimum <= len(plain) <= declared.maximum
    assert decompress(Compression.LZ4, framed, max_size=len(plain)) == plain
    assert decompress(Compression.LZ4, framed) == plain
    if plain:
        with pytest.raises(CorruptRecordError):
            decompress(Compression.LZ4, framed, max_size=len(plain) - 1)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads, st.integers(-5, 19), st.booleans(), st.booleans(), st.booleans(),
       st.integers(1, 3))
def test_zstd_bounded_equals_plain(data: bytes, level: int, content_size: bool,
                                   checksum: bool, streamed: bool, frames: int) -> None:
    compressor = zstandard.ZstdCompressor(level=level, write_content_size=content_size,
                                          write_checksum=checksum)
    if streamed:  # as zstd-jni's ZstdOutputStream in the Java client: no content size
        chunker = compressor.chunker(chunk_size=16384)
        one = b"".join([*chunker.compress(data), *chunker.finish()])
    else:
        one = compressor.compress(data)
    framed = one * frames
    plain = data * frames
    declared = zstd_size_range(framed)
    assert declared.minimum <= len(plain) <= declared.maximum
    assert decompress(Compression.ZSTD, framed, max_size=len(plain)) == plain
    assert decompress(Compression.ZSTD, framed) == plain
    if plain:
        with pytest.raises(CorruptRecordError):
            decompress(Compression.ZSTD, framed, max_size=len(plain) - 1)


@settings(max_examples=100, deadline=None)
@given(payloads, st.booleans())
def test_snappy_and_gzip_bounded_equal_plain(data: bytes, raw: bool) -> None:
    snappy_framed = snappy.compress(data) if raw else compress(Compression.SNAPPY, data)
    assert decompress(Compression.SNAPPY, snappy_framed, max_size=len(data)) == data
    assert decompressed_size_bound(Compression.SNAPPY, snappy_framed) == len(data)
    gzipped = gzip.compress(data)
    assert decompress(Compression.GZIP, gzipped, max_size=len(data)) == data
    assert len(data) <= decompressed_size_bound(Compression.GZIP, gzipped)


@pytest.mark.parametrize("codec", [Compression.LZ4, Compression.ZSTD], ids=lambda c: c.name)
def test_bound_is_tight_for_what_strom_writes(codec: Compression) -> None:
    # One buffer of the declared maximum is allocated per decompression: for
    # ordinary data it must not be much larger than the output.
    data = os.urandom(300_000) + bytes(range(256)) * 3000
    bound = decompressed_size_bound(codec, compress(codec, data))
    assert len(data) <= bound <= len(data) + 256 * 1024


def _corrupt_zstd(declare_window_log: int = 27) -> bytes:
    """A zstd frame whose framing is sound but whose one compressed block is
    noise: no content size, a 128 MiB window, as a streaming encoder writes."""
    noise = os.urandom(150)
    block = 2 << 1 | 1 | len(noise) << 3
    return (struct.pack("<IBB", 0xFD2FB528, 0x00, (declare_window_log - 10) << 3)
            + block.to_bytes(3, "little") + noise)


def _corrupt_lz4() -> bytes:
    """An lz4 frame with 4 MiB blocks (a real header, checksum right), one
    compressed block of noise."""
    noise = os.urandom(150)
    header = lz4.frame.compress(b"x", block_size=lz4.frame.BLOCKSIZE_MAX4MB,
                                store_size=False, content_checksum=False)[:7]
    return header + struct.pack("<I", len(noise)) + noise + struct.pack("<I", 0)


@pytest.mark.parametrize("make, codec", [(_corrupt_zstd, Compression.ZSTD),
                                         (_corrupt_lz4, Compression.LZ4)],
                         ids=["zstd", "lz4"])
def test_corrupt_frame_is_refused_in_one_small_attempt(make: object, codec: Compression
                                                       ) -> None:
    assert callable(make)
    for _ in range(20):
        corrupt = make()
        # The framing caps the output far below the 256 MiB the old growing
        # buffers reached before declaring the data corrupt.
        assert decompressed_size_bound(codec, corrupt) <= 128 * 1024
        with pytest.raises(CorruptRecordError):
            decompress(codec, corrupt, max_size=256 * MiB)


def test_zstd_rle_bomb_is_refused_from_its_headers() -> None:
    # 2 KiB of RLE blocks that would inflate to 64 MiB: the block headers say
    # so exactly, and nothing is decompressed.
    bomb = bytes(cramjam.zstd.compress(bytes(64 * MiB), level=1))
    assert len(bomb) < 4096
    assert zstd_size_range(bomb).minimum == 64 * MiB
    started = time.perf_counter()
    with pytest.raises(CorruptRecordError, match="exceed"):
        decompress(Compression.ZSTD, bomb, max_size=MiB)
    assert time.perf_counter() - started < 1.0  # generous: it reads ~500 headers


def test_zstd_declared_content_size_is_checked_before_decompressing() -> None:
    frame = zstandard.ZstdCompressor(write_content_size=True).compress(bytes(10 * MiB))
    assert zstd_size_range(frame) == (10 * MiB, 10 * MiB)
    with pytest.raises(CorruptRecordError, match="exceed"):
        decompress(Compression.ZSTD, frame, max_size=MiB)


def test_zstd_content_size_beyond_blocks_is_corrupt() -> None:
    frame = bytearray(zstandard.ZstdCompressor(write_content_size=True).compress(b"abc" * 100))
    # single-segment, 1-byte content size 300 -> claim 255 after ... or lie upward:
    header = zstandard.get_frame_parameters(bytes(frame))
    assert header.content_size == 300
    lying = _zstd_with_content_size(bytes(frame), 1 << 40)
    with pytest.raises(CorruptRecordError):
        zstd_size_range(lying)


def _zstd_with_content_size(frame: bytes, size: int) -> bytes:
    """`frame` with its content size field replaced by an 8-byte `size`."""
    descriptor = frame[4]
    single = descriptor & 0x20
    fcs_bytes = {0: 1 if single else 0, 1: 2, 2: 4, 3: 8}[descriptor >> 6]
    dict_bytes = (0, 1, 2, 4)[descriptor & 3]
    start = 5 + (0 if single else 1) + dict_bytes
    new_descriptor = (descriptor & 0x3F) | 0xC0
    return (frame[:4] + bytes([new_descriptor]) + frame[5:start] + struct.pack("<Q", size)
            + frame[start + fcs_bytes:])


def test_lz4_bomb_is_refused_at_the_limit() -> None:
    bomb = compress(Compression.LZ4, bytes(16 * MiB))
    with pytest.raises(CorruptRecordError):
        decompress(Compression.LZ4, bomb, max_size=MiB)


def test_snappy_block_claiming_more_than_snappy_can_produce_is_corrupt() -> None:
    # varint 0xFFFFFFFF (4 GiB) then a few bytes: refused before any allocation
    lying = b"\xff\xff\xff\xff\x0f" + b"\x00" * 10
    with pytest.raises(CorruptRecordError):
        decompress(Compression.SNAPPY, lying, max_size=256 * MiB)
    with pytest.raises(CorruptRecordError):
        decompressed_size_bound(Compression.SNAPPY, lying)


def test_gzip_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(bytes(64 * MiB), mtime=0)
    assert decompressed_size_bound(Compression.GZIP, bomb) >= 64 * MiB
    with pytest.raises(CorruptRecordError, match="exceed"):
        decompress(Compression.GZIP, bomb, max_size=MiB)


@pytest.mark.parametrize("codec", [Compression.LZ4, Compression.ZSTD], ids=lambda c: c.name)
def test_framing_errors(codec: Compression) -> None:
    valid = compress(codec, b"hello" * 1000)
    size_range = lz4_size_range if codec is Compression.LZ4 else zstd_size_range
    for cut in range(len(valid)):
        with pytest.raises(CorruptRecordError):
            size_range(valid[:cut])
    with pytest.raises(CorruptRecordError):
        size_range(b"\x00\x01\x02\x03" + valid[4:])
    with pytest.raises(CorruptRecordError):
        size_range(valid + b"\x00")


def test_skippable_frames_are_skipped() -> None:
    skippable = struct.pack("<II", 0x184D2A50, 3) + b"abc"
    z = zstandard.ZstdCompressor().compress(b"data")
    assert zstd_size_range(skippable + z) == zstd_size_range(z)
    framed = lz4.frame.compress(b"data", store_size=True)
    assert lz4_size_range(skippable + framed) == lz4_size_range(framed)


def test_gzip_reference_is_zlib() -> None:
    # The gzip path's bound is the deflate ratio; zlib agrees on the data.
    data = b"abc" * 10_000
    assert decompress(Compression.GZIP, gzip.compress(data), max_size=len(data)) \
        == zlib.decompress(gzip.compress(data), wbits=31)
