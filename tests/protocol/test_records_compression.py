"""Codecs: round trips, the framings clients write, and decompression bombs."""

from __future__ import annotations

import gzip
import os
import struct

import cramjam
import pytest

from strom.errors import CorruptRecordError, ErrorCode
from strom.protocol.records import Compression, compress, decompress
from strom.protocol.records.compression import XERIAL_HEADER

CODECS = list(Compression)
COMPRESSED = [c for c in Compression if c is not Compression.NONE]

SAMPLES = [
    b"",
    b"x",
    b"hello kafka " * 10,
    os.urandom(1000),
    bytes(range(256)) * 300,  # > 32 KiB xerial blocks, > 64 KiB lz4 blocks
    os.urandom(70_000) + b"\x00" * 70_000,
]


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
@pytest.mark.parametrize("data", SAMPLES, ids=lambda d: str(len(d)))
def test_round_trip(codec: Compression, data: bytes) -> None:
    compressed = compress(codec, data)
    assert decompress(codec, compressed) == data
    assert decompress(codec, memoryview(compressed)) == data
    assert decompress(codec, bytearray(compressed), max_size=len(data)) == data


def _xerial(blocks: list[bytes], *, version: bytes = XERIAL_HEADER[8:]) -> bytes:
    out = [XERIAL_HEADER[:8], version]
    for block in blocks:
        raw = bytes(cramjam.snappy.compress_raw(block))
        out += [struct.pack(">i", len(raw)), raw]
    return b"".join(out)


def test_snappy_writes_xerial_framing() -> None:
    data = bytes(range(256)) * 300
    compressed = compress(Compression.SNAPPY, data)
    assert compressed.startswith(b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01")
    # more than one 32 KiB block
    (first_block,) = struct.unpack_from(">i", compressed, 16)
    assert 16 + 4 + first_block < len(compressed)


def test_snappy_reads_xerial_as_the_java_client_writes_it() -> None:
    parts = [os.urandom(100), b"a" * 32768, b"tail"]
    assert decompress(Compression.SNAPPY, _xerial(parts)) == b"".join(parts)


def test_snappy_reads_xerial_with_little_endian_version() -> None:
    # Some producers write the version ints little-endian; snappy-java and
    # kafka-python ignore them, so must we.
    framed = _xerial([b"abc" * 50], version=struct.pack("<ii", 1, 1))
    assert decompress(Compression.SNAPPY, framed) == b"abc" * 50


def test_snappy_reads_raw_as_librdkafka_writes_it() -> None:
    data = b"librdkafka " * 300
    assert decompress(Compression.SNAPPY, bytes(cramjam.snappy.compress_raw(data))) == data


def test_snappy_xerial_header_only_is_empty() -> None:
    assert decompress(Compression.SNAPPY, XERIAL_HEADER) == b""


@pytest.mark.parametrize(
    "framed",
    [
        XERIAL_HEADER + b"\x00\x00",  # torn block length
        XERIAL_HEADER + struct.pack(">i", 100) + b"abc",  # block past the end
        XERIAL_HEADER + struct.pack(">i", -1),
        XERIAL_HEADER + struct.pack(">i", 3) + b"\xff\xff\xff",  # bad raw block
    ],
)
def test_snappy_bad_xerial(framed: bytes) -> None:
    with pytest.raises(CorruptRecordError):
        decompress(Compression.SNAPPY, framed)


def test_lz4_writes_independent_blocks() -> None:
    compressed = compress(Compression.LZ4, os.urandom(200_000))
    assert compressed[:4] == b"\x04\x22\x4d\x18"
    flg = compressed[4]
    assert flg >> 6 == 1  # version 01
    assert flg & 0x20  # block independence: Kafka's Lz4BlockInputStream needs it


def test_gzip_concatenated_members() -> None:
    data = gzip.compress(b"first ") + gzip.compress(b"second")
    assert decompress(Compression.GZIP, data) == b"first second"


@pytest.mark.parametrize("codec", COMPRESSED, ids=lambda c: c.name)
def test_max_size_boundary(codec: Compression) -> None:
    data = os.urandom(5000) + b"\x00" * 5000
    compressed = compress(codec, data)
    assert decompress(codec, compressed, max_size=len(data)) == data
    with pytest.raises(CorruptRecordError) as info:
        decompress(codec, compressed, max_size=len(data) - 1)
    assert info.value.code == ErrorCode.corrupt_message


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_bomb_is_stopped(codec: Compression) -> None:
    bomb = compress(codec, bytes(20 * 1024 * 1024))
    with pytest.raises(CorruptRecordError):
        decompress(codec, bomb, max_size=1024 * 1024)


def test_gzip_bomb_across_members_is_stopped() -> None:
    member = gzip.compress(bytes(600_000))
    with pytest.raises(CorruptRecordError):
        decompress(Compression.GZIP, member * 4, max_size=2_000_000)


@pytest.mark.parametrize("codec", COMPRESSED, ids=lambda c: c.name)
@pytest.mark.parametrize(
    "garbage", [b"", b"\x00", b"not compressed at all", os.urandom(300)], ids=["0", "1", "t", "r"]
)
def test_garbage(codec: Compression, garbage: bytes) -> None:
    try:
        result = decompress(codec, garbage)
    except CorruptRecordError:
        return
    # A few byte strings are valid streams (an empty raw snappy block is b"\x00").
    assert isinstance(result, bytes)


@pytest.mark.parametrize("codec", COMPRESSED, ids=lambda c: c.name)
def test_truncated(codec: Compression) -> None:
    compressed = compress(codec, os.urandom(3000))
    for cut in (1, len(compressed) // 2, len(compressed) - 1):
        with pytest.raises(CorruptRecordError):
            decompress(codec, compressed[:cut])
        with pytest.raises(CorruptRecordError):
            decompress(codec, compressed[:cut], max_size=10_000)
