"""Size-prefixed Kafka frames, sans-I/O.

Every request and response on the wire is a 4-byte big-endian length followed
by that many bytes. The decoder checks the length against the configured limit
(`socket.request.max.bytes`) before buffering anything of the frame, so a
hostile 2 GB prefix costs nothing.

The decoder follows asyncio's BufferedProtocol shape: the transport asks for
a buffer (`get_buffer`), writes into it, and reports how much it wrote
(`buffer_updated`). Small frames arrive in a reused 64 KiB buffer and are
copied out; a frame larger than that gets a buffer of exactly its size and
the socket reads straight into it, so a 1 MiB produce request is copied
once less (PERFORMANCE.md: no copies, no fresh allocations on receive).
Those large buffers are pooled: the owner hands a frame back with `release`
once nothing refers to it, and the next large frame reuses the memory. A
fresh 1 MiB bytearray costs page faults on every 4 KiB (profiled at 23% of
the broker's time under a 1 KiB-record produce load).
"""

from __future__ import annotations

import struct

from strom.errors import KafkaError

_SIZE = struct.Struct(">i")
SMALL_BUFFER = 64 * 1024
POOLED_BUFFERS = 8


class FrameTooLargeError(KafkaError):
    """A frame's size prefix is negative or above the limit: the connection must close."""


class FrameDecoder:
    """Turns received bytes into whole frames, in order.

    Each frame is returned as its own bytearray so handlers may patch record
    batches in place (offsets) and keep them beyond the next receive.
    """

    __slots__ = ("_buffer", "_start", "_end", "_frame", "_frame_filled", "max_frame_size",
                 "_pool")

    def __init__(self, max_frame_size: int) -> None:
        self._buffer = bytearray(SMALL_BUFFER)
        self._start = 0  # first unconsumed byte in _buffer
        self._end = 0  # end of received bytes in _buffer
        self._frame: memoryview | None = None  # a large frame being received directly
        self._frame_filled = 0
        self.max_frame_size = max_frame_size
        self._pool: list[bytearray] = []

    @property
    def buffered(self) -> int:
        if self._frame is not None:
            return 4 + self._frame_filled
        return self._end - self._start

    def get_buffer(self) -> memoryview:
        """Where the next received bytes should go (never empty)."""
        if self._frame is not None:
            return memoryview(self._frame)[self._frame_filled :]
        if self._end == len(self._buffer):
            self._compact()
        return memoryview(self._buffer)[self._end :]

    def buffer_updated(self, nbytes: int) -> list[bytearray | memoryview]:
        """`nbytes` were written into the last buffer; returns completed frames.

        Raises FrameTooLargeError for a size prefix outside the limit.
        """
        frames: list[bytearray | memoryview] = []
        if self._frame is not None:
            self._frame_filled += nbytes
            if self._frame_filled < len(self._frame):
                return frames
            frames.append(self._frame)
            self._frame = None
            self._frame_filled = 0
            return frames
        self._end += nbytes
        buffer = self._buffer
        while self._end - self._start >= 4:
            (size,) = _SIZE.unpack_from(buffer, self._start)
            if size < 0 or size > self.max_frame_size:
                raise FrameTooLargeError(
                    f"frame of {size} bytes is outside 0..{self.max_frame_size} "
                    "(socket.request.max.bytes)"
                )
            body = self._start + 4
            available = self._end - body
            if available >= size:
                frames.append(buffer[body : body + size])
                self._start = body + size
                continue
            if size + 4 > len(buffer):
                # Too big for the shared buffer: give it a buffer of its own and
                # let the socket fill it directly.
                frame = self._take_buffer(size)
                frame[:available] = buffer[body : self._end]
                self._frame = frame
                self._frame_filled = available
                self._start = self._end = 0
            break
        if self._start == self._end:
            self._start = self._end = 0
        return frames

    def _take_buffer(self, size: int) -> memoryview:
        for i, candidate in enumerate(self._pool):
            if len(candidate) >= size:
                del self._pool[i]
                return memoryview(candidate)[:size]
        return memoryview(bytearray(size))

    def release(self, frame: bytearray | memoryview) -> None:
        """Give a large frame's memory back for reuse. Only once nothing else
        (a request, a record view) refers to any part of it."""
        if not isinstance(frame, memoryview) or not isinstance(frame.obj, bytearray):
            return
        buffer = frame.obj
        frame.release()
        if len(self._pool) >= POOLED_BUFFERS:
            return
        try:
            # A bytearray cannot change size while any view of it is alive, so
            # this proves no slice of the frame is still in use.
            buffer.append(0)
        except BufferError:
            return
        del buffer[-1]
        self._pool.append(buffer)

    def _compact(self) -> None:
        remaining = self._end - self._start
        self._buffer[:remaining] = self._buffer[self._start : self._end]
        self._start, self._end = 0, remaining

    # Convenience for tests and tools: push bytes, pull frames.

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytearray | memoryview]:
        frames: list[bytearray | memoryview] = []
        view = memoryview(data)
        while view:
            target = self.get_buffer()
            n = min(len(target), len(view))
            target[:n] = view[:n]
            view = view[n:]
            frames.extend(self.buffer_updated(n))
        return frames


def encode_frame(payload: bytes | bytearray) -> bytes:
    return _SIZE.pack(len(payload)) + payload
