"""The broker's HTTP listener (`strom.http.listener=http://HOST:PORT`): /metrics
and the health checks, served by aiohttp on the broker's own event loop.

It is bound before the logs load, so /health/ready can say "not yet" (503)
while a large data dir recovers, and /health/live answers from the first
moment. Other parts of strom (the web console) add their pages through
`register_routes` before the broker starts, or through `HttpListener.app`
with `add_routes` before it is started.

Why aiohttp: it serves from the running asyncio loop (no thread, no second
loop), parses HTTP with bounded line and header sizes (8 KiB each: larger
requests get 400, never a stall), and a slow client costs one coroutine,
not the Kafka listeners' time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from strom.broker.metrics import BrokerCollector
from strom.broker.runtime_probes import RuntimeProbes

if TYPE_CHECKING:
    from strom.broker.server import Broker

SETTING = "strom.http.listener"

#: A stalled event loop (no probe tick for this long) fails /health/live.
LIVE_STALL_S = 10.0
#: A connection without a complete request for this long is closed (aiohttp's
#: keep-alive timer also runs from the connection's start, so a half-sent
#: request is dropped too: slowloris clients cannot hold sockets forever). The
#: Kafka listeners' strom.request.receive.timeout.ms default.
IDLE_TIMEOUT_S = 30.0

_URL = re.compile(r"http://(?:\[(?P<v6>[0-9A-Fa-f:.%]+)\]|(?P<host>[0-9A-Za-z\-._]*)):"
                  r"(?P<port>[0-9]{1,5})/?")

RouteHook = Callable[[web.Application, "Broker"], None]
_HOOKS: list[RouteHook] = []


def register_routes(hook: RouteHook) -> None:
    """Have `hook(app, broker)` add routes to every broker's HTTP app built from
    now on (the web console mounts its pages this way)."""
    _HOOKS.append(hook)


class HttpListenerConfigError(ValueError):
    """A `strom.http.listener` value strom cannot serve; the message is one line."""


def parse_listener(value: str) -> tuple[str, int]:
    """(host, port) of http://HOST:PORT (IPv6 hosts bracketed; empty host: all)."""
    match = _URL.fullmatch(value.strip())
    port = int(match["port"]) if match else -1
    if match is None or port > 65535:
        reason = ("https is not supported; put a TLS proxy in front" if
                  value.strip().lower().startswith("https:") else
                  "expected http://HOST:PORT with a port from 0 to 65535, "
                  "e.g. http://127.0.0.1:9644")
        raise HttpListenerConfigError(f"{SETTING}: cannot use {value!r}: {reason}")
    host = match["v6"] or match["host"] or "0.0.0.0"
    return host, port


class HttpListener:
    def __init__(self, broker: Broker, host: str, port: int, *,
                 idle_timeout_s: float = IDLE_TIMEOUT_S) -> None:
        self.broker = broker
        self.idle_timeout_s = idle_timeout_s
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self.probes = RuntimeProbes()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(BrokerCollector(broker, self.probes))
        # process_* (RSS, open fds, CPU) and python_* (GC counts, version).
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.app = build_app(self)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self.probes.start()
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None,
                                     keepalive_timeout=self.idle_timeout_s)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.requested_port, reuse_address=True)
        await site.start()
        address = self._runner.addresses[0]
        self.port = int(address[1])

    async def stop(self) -> None:
        await self.probes.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- handlers ---------------------------------------------------------------------------

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def live(self, request: web.Request) -> web.Response:
        # Answering at all shows the loop runs; the probe shows it keeps time.
        stalled = self.probes.stalled_for()
        body = {"status": "ok" if stalled < LIVE_STALL_S else "stalled",
                "event_loop_lag_seconds": round(self.probes.last_lag, 6)}
        return _json(body, 200 if stalled < LIVE_STALL_S else 503)

    async def ready(self, request: web.Request) -> web.Response:
        reason = self.broker.not_ready_reason()
        if reason is not None:
            return _json({"status": "not ready", "reason": reason}, 503)
        return _json({"status": "ready"}, 200)


def _json(body: object, status: int) -> web.Response:
    return web.Response(text=json.dumps(body) + "\n", status=status,
                        content_type="application/json")


def build_app(listener: HttpListener) -> web.Application:
    """The aiohttp Application: /metrics, /health/live, /health/ready, then every
    registered hook's routes. Unknown paths answer 404."""
    app = web.Application(client_max_size=64 * 1024)
    app.router.add_get("/metrics", listener.metrics)
    app.router.add_get("/health/live", listener.live)
    app.router.add_get("/health/ready", listener.ready)
    for hook in _HOOKS:
        hook(app, listener.broker)
    return app
