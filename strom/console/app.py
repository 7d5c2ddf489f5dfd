"""The console's aiohttp application: server-rendered pages (Jinja2 through
aiohttp-jinja2), a little JavaScript for live numbers over server-sent
events, uPlot for the charts. `build_app(cluster)` makes the app served by
`strom console`; `add_console(app, cluster)` mounts the same pages on
another app (the broker's HTTP listener)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web

from strom.console import pages_groups, pages_messages, pages_topics
from strom.console.cluster import Cluster, ConsoleError
from strom.console.common import CLUSTER, STREAMS, LiveStreams, render, run, sse

HERE = Path(__file__).parent
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(cluster: Cluster) -> web.Application:
    app = web.Application(client_max_size=4 << 20, middlewares=[_errors, _same_origin])
    add_console(app, cluster)
    app.on_cleanup.append(_close)
    return app


async def _end_streams(app: web.Application) -> None:
    """Open live streams end at shutdown rather than hold it up (aiohttp waits for
    running handlers, and a live page never ends its request)."""
    for task in list(app[STREAMS].tasks):
        task.cancel()


async def _close(app: web.Application) -> None:
    await asyncio.to_thread(app[CLUSTER].close)


def mount_console(app: web.Application, cluster: Cluster) -> None:
    """The console's pages on another app (the broker's HTTP listener, before it
    starts), next to that app's own routes."""
    app.middlewares.append(_errors)
    app.middlewares.append(_same_origin)
    add_console(app, cluster)
    app.on_cleanup.append(_close)


def add_console(app: web.Application, cluster: Cluster) -> None:
    app[CLUSTER] = cluster
    app[STREAMS] = LiveStreams()
    app.on_shutdown.append(_end_streams)
    env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(HERE / "templates"),
                               autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["ms"] = _format_ms
    env.filters["num"] = lambda n: f"{n:,}" if isinstance(n, int) else n
    env.filters["bytes"] = format_bytes
    env.filters["seg"] = lambda text: quote(str(text), safe="")
    app.router.add_static("/static", HERE / "static", name="static")
    app.router.add_get("/", overview, name="overview")
    app.router.add_get("/events/overview", overview_events)
    pages_topics.add_routes(app)
    pages_messages.add_routes(app)
    pages_groups.add_routes(app)


def format_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _format_ms(ms: int) -> str:
    if ms < 0:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Failures become a page with one line and the right status, never a 500 trace."""
    try:
        return await handler(request)
    except ConsoleError as exc:
        return render(request, "error.html", {"title": "Error", "message": str(exc),
                                              "status": exc.status}, status=exc.status)
    except web.HTTPNotFound:
        return render(request, "error.html", {"title": "Not found", "status": 404,
                                              "message": f"nothing at {request.path}"},
                      status=404)


@web.middleware
async def _same_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Changes come only from the console's own pages: a form posted from another
    site (cross-site request forgery) is refused."""
    if request.method == "POST":
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            raise web.HTTPForbidden(text="cross-origin form refused\n")
    return await handler(request)


async def overview(request: web.Request) -> web.StreamResponse:
    cluster = request.app[CLUSTER]
    info = await run(cluster.overview)
    return render(request, "overview.html", {"title": "Overview", "info": info})


async def overview_events(request: web.Request) -> web.StreamResponse:
    cluster = request.app[CLUSTER]
    previous: dict[str, tuple[float, int]] = {}

    def sample() -> dict[str, Any]:
        info = cluster.overview()
        ends = cluster.end_offsets(info.topics)
        now = time.monotonic()
        rates: dict[str, float] = {}
        totals: dict[str, int] = {}
        for t in info.topics:
            total = sum(ends.get((t.name, p.partition), 0) for p in t.partitions)
            totals[t.name] = total
            before = previous.get(t.name)
            if before is not None and now > before[0]:
                rates[t.name] = round(max(0, total - before[1]) / (now - before[0]), 1)
            previous[t.name] = (now, total)
        return {"brokers": len(info.brokers), "topics": len(info.topics),
                "partitions": info.partition_count, "messages": totals,
                "rates": rates, "rate_total": round(sum(rates.values()), 1)}

    return await sse(request, sample)
