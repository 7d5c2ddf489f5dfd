"""Framing: whole buffers, one byte at a time, trailing bytes, hostile sizes,
and large frames received straight into their own buffer."""

from __future__ import annotations

import random
import struct

import pytest

from strom.protocol.framing import SMALL_BUFFER, FrameDecoder, FrameTooLargeError, encode_frame

FRAMES = [b"", b"a", b"hello world", bytes(range(256)) * 40,
          bytes(random.Random(1).randbytes(SMALL_BUFFER * 3 + 17)), b"after-large"]


def test_whole_buffer() -> None:
    decoder = FrameDecoder(1 << 20)
    assert decoder.feed(b"".join(encode_frame(f) for f in FRAMES)) == FRAMES
    assert decoder.buffered == 0


def test_one_byte_at_a_time() -> None:
    decoder = FrameDecoder(1 << 20)
    wire = b"".join(encode_frame(f) for f in FRAMES)
    out: list[bytes] = []
    for i in range(len(wire)):
        out.extend(decoder.feed(wire[i : i + 1]))
    assert out == FRAMES


@pytest.mark.parametrize("seed", range(5))
def test_random_chunks_through_the_buffer_interface(seed: int) -> None:
    rng = random.Random(seed)
    frames = [rng.randbytes(rng.choice([0, 5, 1000, SMALL_BUFFER - 4, SMALL_BUFFER,
                                        SMALL_BUFFER * 2])) for _ in range(30)]
    wire = memoryview(b"".join(encode_frame(f) for f in frames))
    decoder = FrameDecoder(1 << 20)
    out: list[bytes] = []
    while wire:
        target = decoder.get_buffer()
        assert len(target) > 0
        n = min(len(target), len(wire), rng.randint(1, 100_000))
        target[:n] = wire[:n]
        wire = wire[n:]
        out.extend(decoder.buffer_updated(n))
    assert out == frames


def test_trailing_partial_frame_is_kept() -> None:
    decoder = FrameDecoder(1 << 20)
    assert decoder.feed(encode_frame(b"abc") + struct.pack(">i", 10) + b"12345") == [b"abc"]
    assert decoder.feed(b"67890") == [b"1234567890"]


@pytest.mark.parametrize("size", [2**31 - 1, 1025, -1, -(2**31)])
def test_size_outside_limit_rejected_before_buffering(size: int) -> None:
    decoder = FrameDecoder(1024)
    with pytest.raises(FrameTooLargeError):
        decoder.feed(struct.pack(">i", size))


def test_frames_are_private_writable_copies() -> None:
    decoder = FrameDecoder(1024)
    first, second = decoder.feed(encode_frame(b"abc") + encode_frame(b"def"))
    first[0] = ord("X")
    assert second == b"def"
    assert decoder.feed(encode_frame(b"ghi")) == [b"ghi"]
    assert first == b"Xbc"


def test_many_frames_keep_the_buffer_bounded() -> None:
    decoder = FrameDecoder(1 << 20)
    payload = b"x" * 1000
    for _ in range(1000):
        assert decoder.feed(encode_frame(payload)) == [payload]
    assert decoder.buffered == 0


def test_large_frame_buffers_are_reused_only_when_unreferenced() -> None:
    decoder = FrameDecoder(1 << 22)
    big = b"y" * (SMALL_BUFFER * 4)
    (first,) = decoder.feed(encode_frame(big))
    assert isinstance(first, memoryview)
    underlying = first.obj
    alive = first[10:20]  # a record view still in use
    decoder.release(first)
    (second,) = decoder.feed(encode_frame(big))
    assert second.obj is not underlying  # not reused while a view was alive
    assert bytes(alive) == b"y" * 10
    del alive
    assert isinstance(second, memoryview)
    second_buffer = second.obj
    decoder.release(second)
    (third,) = decoder.feed(encode_frame(b"z" * (SMALL_BUFFER * 2)))
    assert isinstance(third, memoryview) and third.obj is second_buffer
    assert bytes(third) == b"z" * (SMALL_BUFFER * 2)
