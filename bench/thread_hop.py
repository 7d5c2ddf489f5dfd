#!/usr/bin/env python3
"""What moving work off strom's event loop onto a thread costs and saves
(issue 19, "More than one core" in docs/benchmarks.md).

  .venv/bin/python bench/thread_hop.py

On uvloop, for a no-op, a 100-byte and a 1 MiB file write, and CRC32C of
1 MiB: wall time and the loop thread's own CPU per call, inline and handed
to a two-thread pool with run_in_executor. The loop-thread CPU of a hop is
what a thread must save to be worth it.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import crc32c
import uvloop


async def measure() -> None:
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(2)
    big, small = os.urandom(1 << 20), os.urandom(100)
    with tempfile.TemporaryFile() as f:
        fd = f.fileno()
        cases: list[tuple[str, Callable[[], object], int]] = [
            ("no-op", lambda: None, 20_000),
            ("write 100 B", lambda: os.write(fd, small), 20_000),
            ("CRC32C 1 MiB", lambda: crc32c.crc32c(big), 2_000),
            ("write 1 MiB", lambda: os.write(fd, big), 2_000),
        ]
        for name, fn, n in cases:
            for mode in ("inline", "thread"):
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                t0, c0 = time.perf_counter(), time.thread_time()
                for _ in range(n):
                    if mode == "inline":
                        fn()
                    else:
                        await loop.run_in_executor(pool, fn)
                wall = (time.perf_counter() - t0) / n * 1e6
                cpu = (time.thread_time() - c0) / n * 1e6
                print(f"{name:13s} {mode:6s} wall {wall:8.1f} us   loop-thread CPU {cpu:7.1f} us")
    pool.shutdown()


if __name__ == "__main__":
    uvloop.run(measure())
