"""A live strom (EmbeddedBroker), the console serving it on a loopback port from
a thread, and headless Chromium from Debian's packages driven by Playwright
(Playwright's own browser download is never used)."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from strom.console.app import build_app
from strom.console.cluster import Cluster
from strom.console.common import SAMPLE_INTERVAL
from strom.testing import EmbeddedBroker

CHROMIUM = os.environ.get("STROM_CHROMIUM", "/usr/bin/chromium")


class ConsoleServer:
    """The console app on 127.0.0.1:0 in its own thread and event loop."""

    def __init__(self, bootstrap: str, *, sample_s: float = 0.5) -> None:
        self.cluster = Cluster(bootstrap, timeout=5.0)
        self.app = build_app(self.cluster)
        self.app[SAMPLE_INTERVAL] = sample_s
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(self.app, shutdown_timeout=0.5)
        self.port = 0
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> ConsoleServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    async def _start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self.runner.addresses[0][1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def chromium_or_skip() -> str:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.skip("headless Chromium is not installed (make system-deps installs "
                    "Debian's chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    return CHROMIUM if os.path.exists(CHROMIUM) else str(shutil.which("chromium"))


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker().start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="module")
def console(broker: EmbeddedBroker) -> Iterator[ConsoleServer]:
    server = ConsoleServer(broker.bootstrap).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, headless=True,
                               args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, console: ConsoleServer) -> Iterator[Any]:
    context = browser.new_context(base_url=console.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    p = context.new_page()
    try:
        yield p
    finally:
        context.close()
