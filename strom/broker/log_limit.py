"""Log lines that clients can trigger, bounded per kind of condition.

A client (or an attacker) can cause a condition thousands of times a second:
malformed requests, connections over the limits. One WARNING line each would
flood the log (the fuzzer wrote 501,000 lines per million frames) and cost the
event loop more than the request. So per kind: the first occurrence logs one
WARNING with the peer; later ones within `interval_s` log at DEBUG only and are
counted; once the interval has passed, one summary WARNING says how many more
there were, with the last example. Summaries are written by `flush`, which the
connection guard's sweep calls (at least once a second), so a burst that stops
is still summed up.

Not thread-safe: used on the event loop only. strom.storage.disk limits its
disk-condition lines itself (per file system, and it logs when a condition
ends), below the broker layer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

#: Kafka-like default: at most one line per kind per this many seconds.
INTERVAL_S = 10.0


@dataclass(slots=True)
class _Kind:
    log: logging.Logger
    window_start: float
    suppressed: int = 0
    example: str = ""


class LogLimiter:
    """See the module docstring. `kind` is a short plural noun phrase, e.g.
    "connections closed for malformed requests"; it names the summary line."""

    def __init__(self, interval_s: float = INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._kinds: dict[str, _Kind] = {}

    def warning(self, log: logging.Logger, kind: str, msg: str, *args: object) -> None:
        now = self._clock()
        state = self._kinds.get(kind)
        if state is None:
            self._kinds[kind] = _Kind(log, now)
            log.warning(msg, *args)
            return
        state.suppressed += 1
        state.example = msg % args if args else msg
        log.debug(msg, *args)
        if now - state.window_start >= self._interval_s:
            self._summarize(kind, state, now)

    def flush(self) -> None:
        """Write the summaries whose interval has passed (called periodically)."""
        if not self._kinds:
            return
        now = self._clock()
        for kind, state in list(self._kinds.items()):
            if now - state.window_start < self._interval_s:
                continue
            if state.suppressed:
                self._summarize(kind, state, now)
            else:
                # Quiet for a whole interval: the next occurrence is news again.
                del self._kinds[kind]

    def _summarize(self, kind: str, state: _Kind, now: float) -> None:
        state.log.warning("%d more %s in the last %.0f s (the last: %s)", state.suppressed,
                          kind, now - state.window_start, state.example)
        state.window_start = now
        state.suppressed = 0
        state.example = ""
