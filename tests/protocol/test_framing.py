"""Framing: whole buffers, one byte at a time, trailing bytes, hostile sizes,
and large frames received straight into their own buffer."""

from __future__ import annotations

import random
import struct

import pytest

from strom.protocol.framing import (
    INITIAL_BUFFER,
    POOL_IDLE_S,
    SMALL_BUFFER,
    FrameDecoder,
    FrameTooLargeError,
    RequestMemory,
    encode_frame,
)

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


# Memory follows the bytes that arrive, within a shared budget (issue 13, finding 5).

def test_huge_size_prefix_allocates_nothing_until_bytes_arrive() -> None:
    memory = RequestMemory(0)
    decoder = FrameDecoder(100_000_000, memory)
    assert decoder.feed(struct.pack(">i", 100_000_000) + b"\x00\x12") == []
    assert decoder.receive_buffer_size == INITIAL_BUFFER
    assert decoder.held == 0 and memory.used == 0


def test_large_frame_buffer_grows_with_what_arrived() -> None:
    memory = RequestMemory(0)
    decoder = FrameDecoder(100_000_000, memory)
    decoder.feed(struct.pack(">i", 100_000_000) + bytes(SMALL_BUFFER * 4))
    assert SMALL_BUFFER * 4 <= decoder.held <= SMALL_BUFFER * 8
    assert memory.used == decoder.held
    decoder.close()
    assert memory.used == 0


def _feed_until_waiting(decoder: FrameDecoder, wire: bytes) -> int:
    """Feed as a transport would, stopping once the decoder waits for memory;
    returns how many bytes it took."""
    taken = 0
    while taken < len(wire) and not decoder.waiting_for_memory:
        target = decoder.get_buffer()
        n = min(len(target), len(wire) - taken, 1000)
        target[:n] = wire[taken : taken + n]
        taken += n
        decoder.buffer_updated(n)
    return taken


def test_spent_request_memory_makes_the_decoder_wait_then_resume() -> None:
    memory = RequestMemory(SMALL_BUFFER * 4)
    running, first, second = (FrameDecoder(1 << 24, memory) for _ in range(3))
    # A complete large frame whose request is still running holds memory.
    (in_flight,) = running.feed(encode_frame(bytes(SMALL_BUFFER * 3)))
    big = bytes(random.Random(2).randbytes(SMALL_BUFFER * 8))
    wire = encode_frame(big)
    taken_first = _feed_until_waiting(first, wire)
    assert first.waiting_for_memory and memory.used >= memory.limit
    # Small frames need no request memory; a large one waits once its receive
    # buffer is full.
    assert second.feed(encode_frame(b"small")) == [b"small"]
    taken = _feed_until_waiting(second, wire)
    assert second.waiting_for_memory and taken < len(wire)
    woken: list[str] = []
    memory.wait(lambda: woken.append("first") if first.retry_memory() else None)
    memory.wait(lambda: woken.append("second") if second.retry_memory() else None)
    # The running request ends: its memory is back, the waiters run, oldest first.
    running.release(in_flight)
    assert woken[:1] == ["first"]
    (frame,) = first.feed(wire[taken_first:])
    assert frame == big
    first.release(frame)
    if not woken[1:]:
        assert second.retry_memory()
    (frame,) = second.feed(wire[taken:])
    assert frame == big
    second.release(frame)
    assert memory.used == 0 and memory.in_flight == 0


def test_frames_never_released_are_freed_on_close() -> None:
    memory = RequestMemory(0)
    decoder = FrameDecoder(1 << 22, memory)
    (frame,) = decoder.feed(encode_frame(bytes(SMALL_BUFFER * 2)))
    assert memory.used >= SMALL_BUFFER * 2
    decoder.close()  # the request was cancelled before it ran
    assert memory.used == 0
    decoder.release(frame)  # a late release does not count twice
    assert memory.used == 0


def test_partly_received_frames_filling_the_memory_cannot_wait_for_each_other() -> None:
    """Four large frames, all half received, hold all the request memory and none
    is complete, so nothing in flight will give memory back: one at a time may go
    over the limit, so every frame still completes (as Kafka's non-strict pool)."""
    memory = RequestMemory(SMALL_BUFFER * 16)
    frames = [bytes(random.Random(i).randbytes(SMALL_BUFFER * 12)) for i in range(4)]
    wires = [encode_frame(f) for f in frames]
    decoders = [FrameDecoder(1 << 24, memory) for _ in frames]
    taken = [0] * 4
    done: list[bytes] = []
    for _ in range(1000):
        progressed = False
        for i, decoder in enumerate(decoders):
            if taken[i] == len(wires[i]):
                continue
            if decoder.waiting_for_memory and not decoder.retry_memory():
                continue
            # One read each per round, so all four are half received together.
            target = decoder.get_buffer()
            n = min(len(target), len(wires[i]) - taken[i], SMALL_BUFFER)
            target[:n] = wires[i][taken[i] : taken[i] + n]
            taken[i] += n
            progressed = True
            del target  # as a transport drops its view before the request is handled
            for frame in decoder.buffer_updated(n):
                done.append(bytes(frame))
                decoder.release(frame)
        if not progressed:
            break
    assert sorted(done) == sorted(frames)
    assert memory.used == 0


def test_the_shared_pool_is_dropped_once_large_requests_stop() -> None:
    """The pool outlives connections: kept warm under load, emptied after
    POOL_IDLE_S without a large request (else it stays resident for good)."""
    memory = RequestMemory(0)
    memory.give_back(bytearray(1 << 20))
    memory.trim_pool(0.0)
    memory.trim_pool(POOL_IDLE_S - 0.1)
    assert memory.pooled_bytes == 1 << 20
    buffer = memory.take_pooled(1000)  # a large request: the pool is in use
    assert buffer is not None
    memory.give_back(buffer)
    memory.trim_pool(POOL_IDLE_S + 1)
    assert memory.pooled_bytes == 1 << 20
    memory.trim_pool(2 * POOL_IDLE_S + 1.1)
    assert memory.pooled_bytes == 0 and memory.take_pooled(1) is None
