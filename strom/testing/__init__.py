"""An embedded strom broker for tests: real sockets, real storage, no Docker.

    with EmbeddedBroker() as broker:
        producer = Producer({"bootstrap.servers": broker.bootstrap})

The broker runs its own event loop in a background thread, so blocking
clients (confluent-kafka, kafka-python) and asyncio clients in the test's
own loop can both use it.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from strom.config import BrokerConfig


class EmbeddedBroker:
    def __init__(self, data_dir: Path | None = None, *, port: int = 0,
                 host: str = "127.0.0.1", overrides: Mapping[str, str] | None = None) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="strom-")
            data_dir = Path(self._tmp.name)
        self.data_dir = data_dir
        self.host = host
        self.port = port
        self.overrides = dict(overrides or {})
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Any = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def _config(self) -> BrokerConfig:
        properties = {
            "listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "log.dirs": str(self.data_dir),
        }
        properties.update(self.overrides)
        return BrokerConfig.from_properties(properties)

    def start(self) -> EmbeddedBroker:
        from strom.broker.server import Broker

        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="strom-broker",
                                        daemon=True)
        self._thread.start()
        broker = Broker(self._config())
        asyncio.run_coroutine_threadsafe(broker.start(), loop).result(timeout=30)
        self._broker = broker
        assert broker.port is not None
        # Keep the port across restarts so clients' bootstrap addresses stay valid.
        self.port = broker.port
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._broker.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(timeout=30)
        self._loop.close()
        self._loop = None
        self._broker = None

    def restart(self) -> None:
        """Stop cleanly and start again on the same data and port."""
        self.stop()
        self.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the broker's loop (for inspection from tests)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=timeout)

    @property
    def services(self) -> Any:
        return self._broker.services

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
