"""Size-prefixed Kafka frames, sans-I/O.

Every request and response on the wire is a 4-byte big-endian length followed
by that many bytes. The decoder checks the length against the configured limit
(`socket.request.max.bytes`) before buffering anything of the frame, so a
hostile 2 GB prefix costs nothing.
"""

from __future__ import annotations

import struct

from strom.errors import KafkaError

_SIZE = struct.Struct(">i")


class FrameTooLargeError(KafkaError):
    """A frame's size prefix is negative or above the limit: the connection must close."""


class FrameDecoder:
    """Accumulates bytes and yields whole frames, in order.

    `feed` data as it arrives, then call `next_frame` until it returns None.
    Each frame is returned as its own bytearray so handlers may patch record
    batches in place (offsets) without touching the receive buffer.
    """

    __slots__ = ("_buffer", "_start", "max_frame_size")

    def __init__(self, max_frame_size: int) -> None:
        self._buffer = bytearray()
        self._start = 0
        self.max_frame_size = max_frame_size

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._start and self._start == len(self._buffer):
            # Everything consumed: reset instead of growing forever.
            self._buffer.clear()
            self._start = 0
        elif self._start > 65536 and self._start * 2 > len(self._buffer):
            del self._buffer[: self._start]
            self._start = 0
        self._buffer += data

    @property
    def buffered(self) -> int:
        return len(self._buffer) - self._start

    def pending_frame_size(self) -> int | None:
        """The size of the frame being received, once its prefix has arrived."""
        if self.buffered < 4:
            return None
        (size,) = _SIZE.unpack_from(self._buffer, self._start)
        return int(size)

    def next_frame(self) -> bytearray | None:
        size = self.pending_frame_size()
        if size is None:
            return None
        if size < 0 or size > self.max_frame_size:
            raise FrameTooLargeError(
                f"frame of {size} bytes is outside 0..{self.max_frame_size} "
                "(socket.request.max.bytes)"
            )
        end = self._start + 4 + size
        if end > len(self._buffer):
            return None
        frame = self._buffer[self._start + 4 : end]
        self._start = end
        return frame


def encode_frame(payload: bytes | bytearray) -> bytes:
    return _SIZE.pack(len(payload)) + payload
