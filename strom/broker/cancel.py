"""Cancelling a task that must end, on Python 3.11.

asyncio.wait_for in Python 3.11 swallows a cancellation that arrives while
the future it waits for has just completed (bpo-42130, fixed in 3.12 by
rewriting wait_for over asyncio.timeout): the task runs on as if never
cancelled. A loop that waits in wait_for (a replica fetcher waiting for its
leader's answers through PeerClient.send) then never ends on one cancel(),
and whoever awaits it after cancelling waits forever: a broker alive a
minute after SIGTERM under load, Broker.stop waiting for its fetchers.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


async def cancel_and_wait(task: asyncio.Task[None], *, retry_s: float = 0.5,
                          attempts: int = 40) -> bool:
    """Cancel `task` until it ends (again every `retry_s`, at most `attempts`
    times); True once it has. Its outcome is retrieved, never raised here."""
    for _ in range(attempts):
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=retry_s)
        if done:
            if not task.cancelled() and task.exception() is not None:
                log.debug("task %s ended with %r", task.get_name(), task.exception())
            return True
    log.error("task %s did not end after %d cancellations", task.get_name(), attempts)
    return False
