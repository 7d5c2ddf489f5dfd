"""The HTTP listener under bad input: oversized headers, slow clients, unknown
paths, and `strom.http.listener` values strom cannot serve."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from strom.testing import EmbeddedBroker
from tests.broker.test_startup_errors import assert_refused, serve
from tests.metrics.scrape import get, scrape

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    data = tmp_path_factory.mktemp("http")
    with EmbeddedBroker(data, overrides={"strom.http.listener": "http://127.0.0.1:0"}) as b:
        yield b


def http_address(broker: EmbeddedBroker) -> tuple[str, int]:
    host, port = broker.http_url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def kafka_answers(broker: EmbeddedBroker) -> bool:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    return admin.list_topics(timeout=10).brokers != {}


def read_status_line(sock: socket.socket) -> str:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode()


def test_huge_header_refused_and_kafka_unaffected(broker: EmbeddedBroker) -> None:
    with socket.create_connection(http_address(broker), timeout=10) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000
                     + b"\r\n\r\n")
        status = read_status_line(sock)
    assert status.split()[1] in ("400", "431"), status
    assert kafka_answers(broker)
    status_code, _ = get(broker.http_url + "/health/live")
    assert status_code == 200


def test_unknown_paths_and_methods(broker: EmbeddedBroker) -> None:
    for path in ("/", "/metrics/x", "/health", "/%00"):
        status, _ = get(broker.http_url + path)
        assert status == 404, path
    with socket.create_connection(http_address(broker), timeout=10) as sock:
        sock.sendall(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert read_status_line(sock).split()[1] == "405"


def test_slow_http_clients_do_not_stall_kafka_or_metrics(broker: EmbeddedBroker) -> None:
    # Slowloris: many connections each holding a request half-sent.
    held = []
    try:
        for _ in range(50):
            sock = socket.create_connection(http_address(broker), timeout=10)
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            held.append(sock)
        assert kafka_answers(broker)
        assert scrape(broker.http_url).value("strom_partitions") >= 0
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize(("value", "expected"), [
    ("garbage", "strom.http.listener: cannot use 'garbage'"),
    ("http://127.0.0.1:70000", "expected http://HOST:PORT"),
    ("https://127.0.0.1:9644", "https is not supported"),
    ("PLAINTEXT://127.0.0.1:9644", "expected http://HOST:PORT"),
])
def test_invalid_listener_value_is_one_line(tmp_path: Path, value: str, expected: str) -> None:
    assert_refused(serve(tmp_path, f"strom.http.listener={value}"), expected)


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve(tmp_path, f"strom.http.listener=http://127.0.0.1:{port}")
    assert_refused(result, f"cannot listen on 127.0.0.1:{port} (strom.http.listener)")


def test_ready_is_503_with_a_reason_until_loaded(tmp_path: Path) -> None:
    asyncio.run(_ready_before_load(tmp_path))


async def _ready_before_load(tmp_path: Path) -> None:
    # The listener is bound before the logs load (Broker.start): a broker not
    # started yet is exactly that moment, held still.
    from strom.broker.http_listener import HttpListener
    from strom.broker.server import Broker
    from strom.config import BrokerConfig

    broker = Broker(BrokerConfig.from_properties({"log.dirs": str(tmp_path)}))
    listener = HttpListener(broker, "127.0.0.1", 0)
    await listener.start()
    try:
        base = f"http://127.0.0.1:{listener.port}"
        status, body = await asyncio.to_thread(get, base + "/health/ready")
        assert status == 503
        assert json.loads(body) == {"status": "not ready", "reason": "loading logs and metadata"}
        status, _ = await asyncio.to_thread(get, base + "/health/live")
        assert status == 200
        # Before the logs load /metrics has the runtime's metrics only.
        result = await asyncio.to_thread(scrape, base)
        assert "strom_event_loop_lag_seconds" in result.types
        assert "strom_partitions" not in result.types
    finally:
        await listener.stop()


def test_half_sent_requests_are_closed_after_the_idle_timeout(tmp_path: Path) -> None:
    asyncio.run(_half_sent(tmp_path))


async def _half_sent(tmp_path: Path) -> None:
    from strom.broker.http_listener import HttpListener
    from strom.broker.server import Broker
    from strom.config import BrokerConfig

    broker = Broker(BrokerConfig.from_properties({"log.dirs": str(tmp_path)}))
    listener = HttpListener(broker, "127.0.0.1", 0, idle_timeout_s=0.5)
    await listener.start()
    try:
        assert listener.port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        await writer.drain()
        # The server closes it (EOF) well within the deadline; without the
        # timer the read would time out.
        assert await asyncio.wait_for(reader.read(), timeout=20) == b""
        writer.close()
    finally:
        await listener.stop()
