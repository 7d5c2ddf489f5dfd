"""Framing: whole buffers, one byte at a time, trailing bytes, hostile sizes."""

from __future__ import annotations

import struct

import pytest

from strom.protocol.framing import FrameDecoder, FrameTooLargeError, encode_frame

FRAMES = [b"", b"a", b"hello world", bytes(range(256)) * 40]


def _decode_all(decoder: FrameDecoder) -> list[bytes]:
    out = []
    while (frame := decoder.next_frame()) is not None:
        out.append(bytes(frame))
    return out


def test_whole_buffer() -> None:
    decoder = FrameDecoder(1 << 20)
    decoder.feed(b"".join(encode_frame(f) for f in FRAMES))
    assert _decode_all(decoder) == FRAMES
    assert decoder.buffered == 0


def test_one_byte_at_a_time() -> None:
    decoder = FrameDecoder(1 << 20)
    wire = b"".join(encode_frame(f) for f in FRAMES)
    out: list[bytes] = []
    for i in range(len(wire)):
        decoder.feed(wire[i : i + 1])
        out.extend(_decode_all(decoder))
    assert out == FRAMES


def test_trailing_partial_frame_is_kept() -> None:
    decoder = FrameDecoder(1 << 20)
    decoder.feed(encode_frame(b"abc") + struct.pack(">i", 10) + b"12345")
    assert _decode_all(decoder) == [b"abc"]
    decoder.feed(b"67890")
    assert _decode_all(decoder) == [b"1234567890"]


@pytest.mark.parametrize("size", [2**31 - 1, 1025, -1, -(2**31)])
def test_size_outside_limit_rejected_before_buffering(size: int) -> None:
    decoder = FrameDecoder(1024)
    decoder.feed(struct.pack(">i", size))
    with pytest.raises(FrameTooLargeError):
        decoder.next_frame()


def test_frame_is_a_private_writable_copy() -> None:
    decoder = FrameDecoder(1024)
    decoder.feed(encode_frame(b"abc") + encode_frame(b"def"))
    first = decoder.next_frame()
    assert first is not None
    first[0] = ord("X")
    assert bytes(decoder.next_frame() or b"") == b"def"


def test_buffer_compacts_after_many_frames() -> None:
    decoder = FrameDecoder(1 << 20)
    payload = b"x" * 1000
    for _ in range(1000):
        decoder.feed(encode_frame(payload))
        assert decoder.next_frame() == payload
    assert decoder.buffered == 0
