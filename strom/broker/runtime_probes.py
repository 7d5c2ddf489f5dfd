"""The Python runtime's own health: event-loop lag and GC pauses.

A broker is one event loop: anything that holds it (a long handler, a
collection over millions of objects, a blocking call) delays every client.
The lag probe asks the loop to wake it every INTERVAL_S and records how
late it woke; gc.callbacks time every collection. Both are histograms read
at scrape time (strom.broker.metrics) and the lag's last value answers
/health/live.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from strom.broker.stats import SHORT_BUCKETS, Histogram

#: How often the loop-lag probe wakes: 4 cheap timer callbacks a second.
INTERVAL_S = 0.25


class RuntimeProbes:
    def __init__(self) -> None:
        self.loop_lag = Histogram(SHORT_BUCKETS)
        self.gc_pauses = [Histogram(SHORT_BUCKETS) for _ in range(3)]
        #: perf_counter() of the probe's last wake-up, and how late it was.
        self.last_tick = time.perf_counter()
        self.last_lag = 0.0
        self._task: asyncio.Task[None] | None = None
        self._gc_started = 0.0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._probe(), name="loop-lag")
        gc.callbacks.append(self._on_gc)

    async def stop(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def stalled_for(self) -> float:
        """Seconds since the probe last ran beyond its interval (0 while it keeps up)."""
        return max(0.0, time.perf_counter() - self.last_tick - INTERVAL_S)

    async def _probe(self) -> None:
        while True:
            expected = time.perf_counter() + INTERVAL_S
            await asyncio.sleep(INTERVAL_S)
            now = time.perf_counter()
            lag = max(0.0, now - expected)
            self.loop_lag.observe(lag)
            self.last_tick, self.last_lag = now, lag

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            generation = int(info.get("generation", 0))
            if 0 <= generation < len(self.gc_pauses):
                self.gc_pauses[generation].observe(time.perf_counter() - self._gc_started)
