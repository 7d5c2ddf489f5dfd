"""Size-prefixed Kafka frames, sans-I/O.

Every request and response on the wire is a 4-byte big-endian length followed
by that many bytes. The decoder checks the length against the configured limit
(`socket.request.max.bytes`) before buffering anything of the frame, so a
hostile 2 GB prefix costs nothing.

The decoder follows asyncio's BufferedProtocol shape: the transport asks for
a buffer (`get_buffer`), writes into it, and reports how much it wrote
(`buffer_updated`). Small frames arrive in the connection's receive buffer
and are copied out; that buffer starts at 4 KiB and doubles up to 64 KiB
only when a read fills it, so 2,000 idle connections hold 8 MiB, not 128.

A frame larger than the receive buffer gets a buffer of its own and the
socket reads straight into it, so a 1 MiB produce request is copied once less
(PERFORMANCE.md: no copies, no fresh allocations on receive). That buffer
starts once the frame has filled the receive buffer and grows as bytes
actually arrive (doubling, capped at the declared size), never from the size
prefix alone: a prefix of 100 MB followed by two bytes costs nothing beyond
the receive buffer, not 100 MB (issue 13, finding 5). Every byte of these
buffers is counted in a `RequestMemory` shared by all connections (Kafka's
memory pool, KIP-72, `queued.max.request.bytes`): when it is spent, a
connection that needs more waits (its owner stops reading) instead of
allocating. Finished large frames go back to a pool in the same
`RequestMemory` so the next large frame reuses the memory: a fresh 1 MiB
bytearray costs page faults on every 4 KiB (profiled at 23% of the broker's
time under a 1 KiB-record produce load), and a buffer taken from the pool
whole needs no growing. Measured (decoder alone, 256 KiB reads): a 1 MiB frame
takes 23 us from a warm pool as before, 31 us when it must grow (cold pool);
1 KiB and 16 KiB frames are unchanged (0.34 and 0.95 us).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from strom.errors import KafkaError

_SIZE = struct.Struct(">i")
SMALL_BUFFER = 64 * 1024
INITIAL_BUFFER = 4 * 1024
# Shared by all connections: enough for a few producers pipelining 1 MiB requests.
# 8 buffers / 16 MiB, as much as one connection kept before the pool was shared:
# 32 / 64 MiB left the 1,000-partition bench's RSS after load at 85-103 MiB
# instead of 48 (`bench/run.py --only p1000`), with no throughput gain measured.
POOLED_BUFFERS = 8
# Pooled memory is outside the request budget, so it has a bound of its own.
POOLED_BYTES = 16 * 1024 * 1024
POOL_IDLE_S = 5.0


class FrameTooLargeError(KafkaError):
    """A frame's size prefix is negative or above the limit: the connection must close."""


class RequestMemory:
    """Bytes held by large requests, partly or fully received, across connections.

    As Kafka's SimpleMemoryPool (non-strict): an allocation succeeds while
    anything is left, so one request may overshoot the limit, and a request
    as large as the whole budget can still be received. Waiters (connections
    that stopped reading for memory) are called back, oldest first, when
    memory is freed. Also keeps the pool of finished buffers for reuse.

    Kafka allocates a request's whole size up front, so a request it has
    started can always finish. Here buffers grow as bytes arrive, so partly
    received requests could hold all the memory and wait for each other
    forever. Hence the overdraft: while no complete request is in flight
    (nothing will give memory back), one frame at a time may grow past the
    limit, up to its own declared size.
    """

    __slots__ = ("limit", "used", "in_flight", "_overdraft", "_waiters", "_pool",
                 "pooled_bytes", "_pool_used", "_pool_last_used")

    def __init__(self, limit: int) -> None:
        self.limit = limit  # <= 0: unlimited
        self.used = 0
        # Bytes of complete frames not yet released (their requests are running).
        self.in_flight = 0
        self._overdraft: object | None = None  # the frame's owner allowed past the limit
        self._waiters: list[Callable[[], None]] = []
        self._pool: list[bytearray] = []
        self.pooled_bytes = 0
        self._pool_used = False  # taken from or given to since the last trim
        self._pool_last_used: float | None = None

    def _spent(self) -> bool:
        return 0 < self.limit <= self.used

    def try_acquire(self, nbytes: int, owner: object) -> bool:
        if self._spent():
            if self.in_flight or self._overdraft not in (None, owner):
                return False
            self._overdraft = owner
        self.used += nbytes
        return True

    def frame_done(self, owner: object, nbytes: int) -> None:
        """`owner`'s frame of `nbytes` is complete: its request will release it."""
        self.in_flight += nbytes
        if self._overdraft is owner:
            self._overdraft = None

    def release(self, nbytes: int, *, in_flight: bool = False,
                owner: object | None = None) -> None:
        """Give back a complete frame's memory (`in_flight`) or a partial one's
        (`owner`, which loses the overdraft)."""
        self.used -= nbytes
        if in_flight:
            self.in_flight -= nbytes
        if owner is not None and self._overdraft is owner:
            self._overdraft = None
        self._wake()

    def _wake(self) -> None:
        # A woken waiter succeeds whenever the loop lets it run (memory left, or
        # the overdraft free with nothing in flight), so this ends.
        for _ in range(len(self._waiters)):
            if self._spent() and (self.in_flight or self._overdraft is not None):
                return
            self._waiters.pop(0)()

    def wait(self, callback: Callable[[], None]) -> None:
        """Call `callback` once memory is available; it may wait again."""
        self._waiters.append(callback)

    def cancel_wait(self, callback: Callable[[], None]) -> None:
        if callback in self._waiters:
            self._waiters.remove(callback)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def take_pooled(self, size: int) -> bytearray | None:
        self._pool_used = True
        for i, candidate in enumerate(self._pool):
            if len(candidate) >= size:
                del self._pool[i]
                self.pooled_bytes -= len(candidate)
                return candidate
        return None

    def give_back(self, buffer: bytearray) -> None:
        self._pool_used = True
        if (len(self._pool) >= POOLED_BUFFERS
                or self.pooled_bytes + len(buffer) > POOLED_BYTES):
            return
        self._pool.append(buffer)
        self.pooled_bytes += len(buffer)

    def trim_pool(self, now: float, idle_s: float = POOL_IDLE_S) -> None:
        """Drop the pooled buffers once no large request has come for `idle_s`
        (`now` from a monotonic clock, called periodically). The pool is shared
        by every connection and outlives them: without this, a burst of large
        produce requests left the whole pool resident for good. Under load the
        pool stays warm."""
        if self._pool_used or self._pool_last_used is None:
            self._pool_used = False
            self._pool_last_used = now
        elif self._pool and now - self._pool_last_used >= idle_s:
            self._pool.clear()
            self.pooled_bytes = 0


class FrameDecoder:
    """Turns received bytes into whole frames, in order.

    Each frame is returned as its own bytearray so handlers may patch record
    batches in place (offsets) and keep them beyond the next receive.
    """

    __slots__ = ("_buffer", "_start", "_end", "_frame", "_frame_size", "_frame_filled",
                 "max_frame_size", "memory", "waiting_for_memory", "_handed_out")

    def __init__(self, max_frame_size: int, memory: RequestMemory | None = None) -> None:
        self._buffer = bytearray(INITIAL_BUFFER)
        self._start = 0  # first unconsumed byte in _buffer
        self._end = 0  # end of received bytes in _buffer
        # A large frame being received directly: its buffer (counted in `memory`),
        # declared size and bytes received so far.
        self._frame: bytearray | None = None
        self._frame_size = 0
        self._frame_filled = 0
        self.max_frame_size = max_frame_size
        self.memory = memory if memory is not None else RequestMemory(0)
        # The large frame's buffer is full and `memory` is spent: read nothing more
        # until `retry_memory` succeeds.
        self.waiting_for_memory = False
        # Large frames returned and not yet released, by id: their memory is counted
        # until `release`, or `close` if a request never ran.
        self._handed_out: dict[int, bytearray] = {}

    @property
    def buffered(self) -> int:
        if self._frame is not None:
            return 4 + self._frame_filled
        return self._end - self._start

    @property
    def held(self) -> int:
        """Bytes of the large frame being received (counted in `memory`)."""
        return len(self._frame) if self._frame is not None else 0

    @property
    def receive_buffer_size(self) -> int:
        return len(self._buffer)

    def get_buffer(self) -> memoryview:
        """Where the next received bytes should go (never empty)."""
        frame = self._frame
        if frame is not None:
            if self._frame_filled == len(frame):
                # Only if the owner kept reading while waiting for memory.
                self._grow(force=True)
                frame = self._frame
                assert frame is not None
            return memoryview(frame)[self._frame_filled : min(len(frame), self._frame_size)]
        if self._end == len(self._buffer):
            if self.waiting_for_memory:
                # Only if the owner kept reading while waiting for memory.
                self._grow(force=True)
                return self.get_buffer()
            if len(self._buffer) < SMALL_BUFFER:
                # A read filled it: more is coming than fits, so double it, up to
                # SMALL_BUFFER (a larger frame moves to a buffer of its own once it
                # fills this one). A new buffer, not extend(): the last view handed
                # out may still be alive.
                grown = bytearray(2 * len(self._buffer))
                remaining = self._end - self._start
                grown[:remaining] = self._buffer[self._start : self._end]
                self._buffer = grown
                self._start, self._end = 0, remaining
            else:
                self._compact()
        return memoryview(self._buffer)[self._end :]

    def buffer_updated(self, nbytes: int) -> list[bytearray | memoryview]:
        """`nbytes` were written into the last buffer; returns completed frames.

        Raises FrameTooLargeError for a size prefix outside the limit.
        """
        frames: list[bytearray | memoryview] = []
        if self._frame is not None:
            self._frame_filled += nbytes
            if self._frame_filled < self._frame_size:
                if self._frame_filled == len(self._frame):
                    self._grow(force=False)
                return frames
            frames.append(memoryview(self._frame)[: self._frame_size])
            self._handed_out[id(self._frame)] = self._frame
            self.memory.frame_done(self, len(self._frame))
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
            if size + 4 > SMALL_BUFFER:
                # Too big for the receive buffer: it gets a buffer of its own, which
                # the socket fills directly. A pooled one is memory already held, so
                # it is taken at once; a new one only once this one is full.
                pooled = self.memory.take_pooled(size)
                if pooled is not None:
                    self.memory.used += len(pooled)
                    self._move_large_frame(size, pooled)
                elif self._end == len(buffer) and self._start == 0:
                    self._grow(force=False)  # else get_buffer compacts first
            break
        if self._start == self._end:
            self._start = self._end = 0
        return frames

    def _move_large_frame(self, size: int, frame: bytearray) -> None:
        """The large frame at the start of the receive buffer continues in `frame`."""
        body = self._start + 4
        available = self._end - body
        frame[:available] = self._buffer[body : self._end]
        self._frame = frame
        self._frame_size = size
        self._frame_filled = available
        self._start = self._end = 0

    def _grow(self, *, force: bool) -> bool:
        """Double the large frame's room: its own buffer, or a first one when it
        has filled the receive buffer. False (waiting_for_memory) if the request
        memory is spent."""
        frame = self._frame
        if frame is None:
            (size,) = _SIZE.unpack_from(self._buffer, self._start)
            old, new = 0, min(size, 2 * (self._end - self._start - 4))
        else:
            size = self._frame_size
            old, new = len(frame), min(size, 2 * len(frame))
        if not self.memory.try_acquire(new - old, self):
            if not force:
                self.waiting_for_memory = True
                return False
            self.memory.used += new - old
        grown = bytearray(new)
        if frame is None:
            self._move_large_frame(size, grown)
        else:
            grown[:old] = frame
            self._frame = grown
        self.waiting_for_memory = False
        return True

    def retry_memory(self) -> bool:
        """Try again to grow the large frame's buffer; True once reading may resume."""
        if not self.waiting_for_memory:
            return True
        return self._grow(force=False)

    def release(self, frame: bytearray | memoryview) -> None:
        """Give a large frame's memory back. Call exactly once per frame returned,
        once nothing else (a request, a record view) refers to any part of it."""
        if not isinstance(frame, memoryview) or not isinstance(frame.obj, bytearray):
            return
        buffer = frame.obj
        frame.release()
        if self._handed_out.pop(id(buffer), None) is None:
            return  # already given back by close()
        self.memory.release(len(buffer), in_flight=True)
        try:
            # A bytearray cannot change size while any view of it is alive, so
            # this proves no slice of the frame is still in use.
            buffer.append(0)
        except BufferError:
            return
        del buffer[-1]
        self.memory.give_back(buffer)

    def close(self) -> None:
        """The connection is gone: free the partly received frame and uncount frames
        whose requests will never run (cancelled before they started)."""
        handed_out = sum(len(buffer) for buffer in self._handed_out.values())
        self._handed_out.clear()
        if handed_out:
            self.memory.release(handed_out, in_flight=True)
        partial = len(self._frame) if self._frame is not None else 0
        self._frame = None
        self.waiting_for_memory = False
        self.memory.release(partial, owner=self)

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
