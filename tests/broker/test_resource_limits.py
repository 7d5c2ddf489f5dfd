"""Resource attacks (issue 13, finding 5 and "resource tests") against a broker in
a subprocess: huge size prefixes, slowloris, 2,000 idle connections, a client
that never reads, large requests beyond queued.max.request.bytes, too many
connections. Meanwhile another client's ApiVersions round trips stay fast and
the broker's RSS stays within the configured limits.

Limits are small so the tests run in seconds: connections.max.idle.ms and
strom.request.receive.timeout.ms of 2 s, queued.max.request.bytes of 16 MiB.
Round-trip figures are printed (pytest -s) for the report; the issue's goal
is p99 under 50 ms, asserted with a margin for a loaded test machine.
"""

from __future__ import annotations

import contextlib
import resource
import select
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.process import StromProcess

MIB = 1 << 20
TIMEOUT_MS = 2000
REQUEST_MEMORY = 16 * MIB
# The goal is 50 ms; the machine running the suite is shared, so the
# assertion leaves room and the measured figure is printed.
P99_LIMIT_S = 0.2


@pytest.fixture(scope="module")
def strom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StromProcess]:
    _raise_open_files(2_500)
    broker = StromProcess(tmp_path_factory.mktemp("limits") / "data", overrides={
        "connections.max.idle.ms": str(TIMEOUT_MS),
        "strom.request.receive.timeout.ms": str(TIMEOUT_MS),
        "queued.max.request.bytes": str(REQUEST_MEMORY),
        "max.connections.per.ip.overrides": "127.0.0.2:20",
    })
    broker.start()
    yield broker
    broker.stop()


def _raise_open_files(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below the {needed} sockets needed")
    # Inherited by the broker started afterwards.
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def connect(broker: StromProcess, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", broker.port))
    return sock


API_VERSIONS_V0 = struct.pack(">ihhih", 10, 18, 0, 7, -1)


def read_frame(sock: socket.socket) -> bytes:
    def exact(n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed by the broker")
            out += chunk
        return bytes(out)

    (size,) = struct.unpack(">i", exact(4))
    return exact(size)


class RoundTrips:
    """An ApiVersions loop on one well-behaved connection, interleaved with an attack."""

    def __init__(self, broker: StromProcess) -> None:
        self.sock = connect(broker)
        self.times: list[float] = []

    def once(self) -> None:
        start = time.perf_counter()
        self.sock.sendall(API_VERSIONS_V0)
        frame = read_frame(self.sock)
        self.times.append(time.perf_counter() - start)
        assert frame[:4] == struct.pack(">i", 7) and frame[4:6] == b"\x00\x00"

    def run(self, count: int, between: Callable[[], None] = lambda: None) -> None:
        for _ in range(count):
            between()
            self.once()

    def p99(self, label: str) -> float:
        times = sorted(self.times)
        p50, p99 = times[len(times) // 2], times[min(len(times) - 1, len(times) * 99 // 100)]
        print(f"\n{label}: {len(times)} ApiVersions round trips, p50 {p50 * 1000:.2f} ms, "
              f"p99 {p99 * 1000:.2f} ms, max {times[-1] * 1000:.2f} ms")
        return p99

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def round_trips(broker: StromProcess) -> Iterator[RoundTrips]:
    loop = RoundTrips(broker)
    try:
        yield loop
    finally:
        loop.close()


def closed_by_broker(sock: socket.socket) -> bool:
    """True if the broker closed (EOF or reset), without blocking."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        while True:
            sock.setblocking(False)
            try:
                if not sock.recv(65536):
                    return True
            except BlockingIOError:
                return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    except OSError:
        return True


def wait_all_closed(socks: list[socket.socket], timeout: float) -> float:
    """Seconds until the broker has closed every socket; fails after `timeout`."""
    start = time.monotonic()
    open_socks = list(socks)
    while open_socks and time.monotonic() - start < timeout:
        readable, _, _ = select.select(open_socks[:1000], [], [], 0.1)
        open_socks = [s for s in open_socks if not (s in readable and closed_by_broker(s))]
    assert not open_socks, f"{len(open_socks)} of {len(socks)} still open after {timeout} s"
    return time.monotonic() - start


def test_huge_size_prefixes_allocate_only_what_arrives(strom: StromProcess) -> None:
    """Finding 5: 20 x a 100,000,000-byte prefix and 2 bytes pinned 2 GiB at 0098471."""
    assert strom.proc is not None
    before = rss_bytes(strom.proc.pid)
    attackers = [connect(strom) for _ in range(20)]
    with round_trips(strom) as loop:
        for sock in attackers:
            sock.sendall(struct.pack(">i", 100_000_000) + b"\x00\x12")
        loop.run(300)
        grown = rss_bytes(strom.proc.pid) - before
        p99 = loop.p99("20 huge size prefixes")
    print(f"RSS grew {grown / MIB:.1f} MiB")
    assert grown < 32 * MIB
    assert p99 < P99_LIMIT_S
    # Half-sent requests are closed after strom.request.receive.timeout.ms.
    took = wait_all_closed(attackers, timeout=TIMEOUT_MS / 1000 + 8)
    print(f"half-sent requests closed after {took:.1f} s")
    for sock in attackers:
        sock.close()
