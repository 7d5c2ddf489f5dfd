"""What every console page shares: the cluster's app key, rendering, running
blocking client calls in threads, and the server-sent event stream."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import aiohttp_jinja2
from aiohttp import web

from strom.console.cluster import Cluster, ConsoleError

CLUSTER = web.AppKey("cluster", Cluster)
#: Seconds between live samples (end offsets, lag) on an open page.
SAMPLE_S = 3.0
SAMPLE_INTERVAL = web.AppKey("sample_interval", float)
#: The handler tasks of open live streams, ended at shutdown.
class LiveStreams:
    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()


STREAMS = web.AppKey("streams", LiveStreams)

T = TypeVar("T")


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A blocking client call in a worker thread: the loop keeps serving."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def render(request: web.Request, template: str, context: dict[str, Any], *,
           status: int = 200) -> web.Response:
    context.setdefault("message", None)
    context.setdefault("error", None)
    context["bootstrap"] = request.app[CLUSTER].bootstrap
    return aiohttp_jinja2.render_template(template, request, context, status=status)


def form_int(value: str | None, what: str, *, minimum: int = 0,
             maximum: int | None = None, default: int | None = None) -> int:
    """An integer form field, or a ConsoleError (400) naming the field."""
    text = (value or "").strip()
    if not text:
        if default is not None:
            return default
        raise ConsoleError(f"{what}: a number is required")
    try:
        number = int(text)
    except ValueError:
        raise ConsoleError(f"{what}: {text!r} is not a whole number") from None
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise ConsoleError(f"{what}: {number} is out of range ({bound})")
    return number


async def sse(request: web.Request, sample: Callable[[], dict[str, Any]]) -> web.StreamResponse:
    """Stream `sample()` (run in a thread) as JSON events every few seconds until
    the page goes away. A failed sample sends {"ok": false, "error": ...} and the
    stream goes on, so the page shows a banner and recovers by itself when the
    cluster comes back."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
    await response.prepare(request)
    interval = request.app.get(SAMPLE_INTERVAL, SAMPLE_S)
    task = asyncio.current_task()
    streams = request.app[STREAMS].tasks
    if task is not None:
        streams.add(task)
    try:
        async for event in _samples(sample, interval):
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
    except ConnectionResetError:
        pass  # the page went away
    finally:
        streams.discard(task)
    return response


async def _samples(sample: Callable[[], dict[str, Any]],
                   interval: float) -> AsyncIterator[dict[str, Any]]:
    while True:
        started = time.monotonic()
        try:
            event = await asyncio.to_thread(sample)
            event["ok"] = True
        except ConsoleError as exc:
            event = {"ok": False, "error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - any client failure reads as unreachable
            event = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        event["time"] = time.time()
        yield event
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
