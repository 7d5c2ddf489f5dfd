"""Send fuzz frames to a live broker over many connections at once.

Each connection sends a few frames pipelined, then reads answers until every
frame is answered, the broker closes the connection (the right answer to a
malformed request) or nothing arrives for `answer_timeout` (a long-polling
fetch, a join waiting for its group, an acks=0 produce); then it reconnects.
Answers must come back in request order (correlation ids).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import struct
from collections.abc import Callable, Sequence

from tests.fuzz.frames import FrameSource

_SIZE = struct.Struct(">i")


@dataclasses.dataclass
class Stats:
    frames_sent: int = 0
    answers: int = 0
    closed_by_broker: int = 0
    unanswered: int = 0  # connections given up after answer_timeout
    out_of_order: int = 0
    connect_failures: int = 0
    by_kind: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    # The last frames each connection sent, to replay after a crash.
    recent: collections.deque[bytes] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=256))


async def _read_answers(reader: asyncio.StreamReader, expected: collections.deque[int],
                        stats: Stats, answer_timeout: float) -> bool:
    """Read until every expected answer came; False once the connection is done."""
    while expected:
        try:
            raw = await asyncio.wait_for(reader.readexactly(4), answer_timeout)
            (size,) = _SIZE.unpack(raw)
            frame = await asyncio.wait_for(reader.readexactly(size), answer_timeout)
        except (asyncio.IncompleteReadError, ConnectionError):
            stats.closed_by_broker += 1
            return False
        except TimeoutError:
            stats.unanswered += 1
            return False
        stats.answers += 1
        (correlation_id,) = _SIZE.unpack_from(frame, 0)
        # Requests that get no answer (acks=0) are skipped; anything else is a bug.
        while expected and expected[0] != correlation_id:
            expected.popleft()
        if not expected:
            stats.out_of_order += 1
            return False
        expected.popleft()
    return True


async def _connection(host: str, port: int, source: FrameSource, budget: Callable[[], bool],
                      stats: Stats, answer_timeout: float, max_pipeline: int) -> None:
    correlation_id = 0
    while budget():
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            stats.connect_failures += 1
            await asyncio.sleep(0.05)  # the broker is restarting or out of sockets
            continue
        try:
            alive = True
            while alive and budget():
                expected: collections.deque[int] = collections.deque()
                batch = []
                for _ in range(source.rng.randint(1, max_pipeline)):
                    if not budget():
                        break
                    correlation_id = (correlation_id + 1) & 0x7FFFFFFF
                    kind, _, frame = source.next(correlation_id)
                    stats.frames_sent += 1
                    stats.by_kind[kind] += 1
                    stats.recent.append(frame)
                    batch.append(frame)
                    expected.append(correlation_id)
                writer.write(b"".join(batch))
                try:
                    await writer.drain()
                except ConnectionError:
                    stats.closed_by_broker += 1
                    break
                alive = await _read_answers(reader, expected, stats, answer_timeout)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass


async def run(host: str, port: int, *, frames: int, connections: int, seed: int,
              captured: Sequence[bytes], answer_timeout: float = 1.0, max_pipeline: int = 4,
              on_progress: Callable[[Stats], None] | None = None,
              progress_every: float = 10.0, stats: Stats | None = None) -> Stats:
    """Send `frames` frames over `connections` connections; `stats` fills as they go."""
    stats = stats if stats is not None else Stats()

    def frame_budget() -> bool:
        return stats.frames_sent < frames

    sources = [FrameSource(seed * 1000 + i, captured) for i in range(connections)]
    tasks = [asyncio.create_task(_connection(host, port, source, frame_budget, stats,
                                             answer_timeout, max_pipeline))
             for source in sources]
    done = asyncio.gather(*tasks)
    while True:
        try:
            await asyncio.wait_for(asyncio.shield(done), progress_every)
            break
        except TimeoutError:
            if on_progress is not None:
                on_progress(stats)
    return stats
