"""What the shop's services have in common: an HTTP server, a health page, a main()."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from examples.shop.web import HttpError, JsonServer
from strom.views import BrokerUnavailable, CatchUpTimeout, View, ViewFailed


class Service:
    name = "service"

    def __init__(self, bootstrap: str, *, port: int = 0, host: str = "127.0.0.1",
                 data_dir: Path | None = None) -> None:
        self.bootstrap = bootstrap
        self.data_dir = data_dir
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True)
        self.http = JsonServer(self.name, host, port)
        self.http.route("GET", "/health")(lambda groups, query, body: (200, self.health()))
        self.http.route("GET", "/health/caught-up")(self._caught_up)
        self.views: list[View] = []

    @property
    def url(self) -> str:
        return self.http.url

    def start(self) -> Service:
        for view in self.views:
            view.start()
        self.http.start()
        return self

    def stop(self) -> None:
        self.http.stop()
        for view in self.views:
            view.close()

    def health(self) -> dict[str, Any]:
        return {"service": self.name, "views": [view_health(v) for v in self.views]}

    def _caught_up(self, groups: tuple[str, ...], query: dict[str, str],
                   body: Any) -> tuple[int, Any]:
        """200 once every view applied (and published) all that exists now; 503 if
        not within ?timeout= seconds."""
        timeout = float(query.get("timeout", "10"))
        try:
            for view in self.views:
                view.catch_up(timeout, published=True)
        except (CatchUpTimeout, BrokerUnavailable, ViewFailed) as exc:
            raise HttpError(503, str(exc)) from None
        return 200, self.health()


def view_health(view: View) -> dict[str, Any]:
    progress = view.progress()
    return {"view": view.name, "state": progress.state.value, "applied": progress.applied,
            "positions": {f"{t}/{p}": o for (t, p), o in sorted(progress.positions.items())},
            "broker_error": progress.broker_error, "progress": str(progress)}


def main(factory: Callable[[argparse.Namespace], Service], description: str,
         add_arguments: Callable[[argparse.ArgumentParser], None] | None = None) -> int:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bootstrap", default="localhost:9092")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--log-level", default="INFO")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    service = factory(args)
    service.start()
    print(f"{service.name} ready on {service.url}", flush=True)
    stop.wait()
    service.stop()
    return 0
