"""Resource attacks (issue 13, finding 5 and "resource tests") against a broker in
a subprocess: huge size prefixes, slowloris, 2,000 idle connections, a client
that never reads, large requests beyond queued.max.request.bytes, too many
connections. Meanwhile another client's ApiVersions round trips stay fast and
the broker's RSS stays within the configured limits.

Limits are small so the tests run in seconds: connections.max.idle.ms of 5 s
(long enough to open 2,000 connections first), strom.request.receive.timeout.ms
of 2 s, and for the request-memory test queued.max.request.bytes of 16 MiB
(with socket.request.max.bytes of 8 MiB: Kafka requires it to be no larger).
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
from kio.schema.list_offsets.v9 import request as lo

from strom.protocol.api import ApiKey
from strom.protocol.records import RecordSpec, build_batch
from tests.broker.raw_client import RawClient
from tests.process import StromProcess
from tests.wire import WireClient, encode_request, metadata_request, produce_request

MIB = 1 << 20
TIMEOUT_MS = 2000
IDLE_MS = 5000
REQUEST_MEMORY = 16 * MIB
# The goal is 50 ms; the machine running the suite is shared, so the
# assertion leaves room and the measured figure is printed.
P99_LIMIT_S = 0.2


@pytest.fixture(scope="module")
def strom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StromProcess]:
    _raise_open_files(2_500)
    broker = StromProcess(tmp_path_factory.mktemp("limits") / "data", overrides={
        "connections.max.idle.ms": str(IDLE_MS),
        "strom.request.receive.timeout.ms": str(TIMEOUT_MS),
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
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except BlockingIOError:
        return False
    except OSError:  # reset
        return True
    finally:
        sock.settimeout(timeout)


def wait_all_closed(socks: list[socket.socket], timeout: float) -> float:
    """Seconds until the broker has closed every socket; fails after `timeout`."""
    start = time.monotonic()
    open_socks = {sock.fileno(): sock for sock in socks}
    poller = select.poll()  # select() stops at descriptor 1024
    for fd in open_socks:
        poller.register(fd, select.POLLIN)
    while open_socks and time.monotonic() - start < timeout:
        for fd, _ in poller.poll(100):
            if closed_by_broker(open_socks[fd]):
                poller.unregister(fd)
                del open_socks[fd]
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


def test_slowloris_connections_are_closed(strom: StromProcess) -> None:
    """Connections trickling a request one byte at a time never finish it: each is
    closed strom.request.receive.timeout.ms after its request began."""
    assert strom.proc is not None
    # A Metadata v0 request announced as 100,000 bytes: it never completes.
    request = struct.pack(">ihhih", 100_000, 3, 0, 9, -1) + bytes(1000)
    trickling = [connect(strom) for _ in range(200)]
    sent = [0] * len(trickling)
    closed: set[int] = set()
    before = rss_bytes(strom.proc.pid)
    log_lines_before = _timeout_log_lines(strom)

    def trickle() -> None:
        for i, sock in enumerate(trickling):
            if i in closed:
                continue
            try:
                sock.send(request[sent[i] : sent[i] + 1])
                sent[i] += 1
            except OSError:
                closed.add(i)

    start = time.monotonic()
    deadline = start + TIMEOUT_MS / 1000 + 8
    with round_trips(strom) as loop:
        while len(closed) < len(trickling) and time.monotonic() < deadline:
            loop.run(10, trickle)
            closed.update(i for i, sock in enumerate(trickling)
                          if i not in closed and closed_by_broker(sock))
        grown = rss_bytes(strom.proc.pid) - before
        p99 = loop.p99("slowloris, 200 connections")
    print(f"all {len(trickling)} closed after {time.monotonic() - start:.1f} s "
          f"({min(sent)}-{max(sent)} bytes each); RSS grew {grown / MIB:.1f} MiB")
    assert len(closed) == len(trickling)
    # Logged in one line per sweep, not one per connection.
    assert _timeout_log_lines(strom) - log_lines_before <= 20
    assert grown < 32 * MIB
    assert p99 < P99_LIMIT_S
    for sock in trickling:
        sock.close()


def _timeout_log_lines(broker: StromProcess) -> int:
    return broker.log_path.read_text().count("(strom.request.receive.timeout.ms)")


def test_two_thousand_idle_connections(strom: StromProcess) -> None:
    """2,000 connections that send nothing cost little and close after
    connections.max.idle.ms; other clients are served meanwhile."""
    assert strom.proc is not None
    before = rss_bytes(strom.proc.pid)
    idle: list[socket.socket] = []
    with round_trips(strom) as loop:
        # One request on each, as real clients do (ApiVersions) before going idle,
        # so every connection has had its receive buffer.
        for _ in range(2_000):
            idle.append(connect(strom))
            idle[-1].sendall(API_VERSIONS_V0)
            read_frame(idle[-1])
        loop.run(300)
        grown = rss_bytes(strom.proc.pid) - before
        p99 = loop.p99("2,000 idle connections")
    print(f"RSS grew {grown / MIB:.1f} MiB for 2,000 connections "
          f"({grown / 2000 / 1024:.1f} KiB each)")
    assert grown < 64 * MIB
    assert p99 < P99_LIMIT_S
    took = wait_all_closed(idle, timeout=IDLE_MS / 1000 + 10)
    print(f"idle connections closed after {took:.1f} s more")
    for sock in idle:
        sock.close()


def test_client_that_never_reads_is_held_back_then_closed(strom: StromProcess) -> None:
    """A client pipelining requests and never reading its responses: the broker
    stops reading from it (backpressure) instead of buffering responses without
    bound, and closes it once idle. 100 topics with long names make each
    Metadata response about 30 KB: at 0098471 one 64 KiB read of 15-byte
    requests started 4,000 of them (over 100 MB of responses)."""
    assert strom.proc is not None
    with RawClient(strom.bootstrap) as admin:
        response = admin.send(ApiKey.CREATE_TOPICS, 7, {"timeout_ms": 30_000, "topics": [
            {"name": f"never-read-{i:03d}-" + "x" * 230, "num_partitions": 1,
             "replication_factor": 1, "assignments": [], "configs": []}
            for i in range(100)]})
        assert all(topic.error_code == 0 for topic in response.topics)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", strom.port))
    # Metadata v4 for all topics (null array), not auto-creating.
    metadata_all_topics = struct.pack(">ihhihib", 15, 3, 4, 11, -1, -1, 0)
    batch = metadata_all_topics * 5000
    before = rss_bytes(strom.proc.pid)
    sent = 0
    sock.settimeout(0.5)
    with round_trips(strom) as loop:
        start = time.monotonic()
        try:
            while time.monotonic() - start < 10:
                sent += sock.send(batch)
                loop.once()
        except TimeoutError:
            pass  # the broker stopped reading: the kernel buffers are full
        loop.run(200)
        grown = rss_bytes(strom.proc.pid) - before
        p99 = loop.p99("a client that never reads")
    requests = sent // len(metadata_all_topics)
    print(f"sent {requests} Metadata requests before the broker stopped reading; "
          f"RSS grew {grown / MIB:.1f} MiB")
    assert time.monotonic() - start < 10, "the broker never stopped reading"
    assert grown < 32 * MIB
    assert p99 < P99_LIMIT_S
    # Watch for the close without reading: reading would let the broker write again.
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLRDHUP)
    start = time.monotonic()
    while not poller.poll(100) and time.monotonic() - start < IDLE_MS / 1000 + 8:
        pass
    took = time.monotonic() - start
    assert took < IDLE_MS / 1000 + 8, "never closed"
    print(f"closed after {took:.1f} s more without progress")
    sock.close()


@pytest.fixture
def strom_small_memory(tmp_path: Path) -> Iterator[StromProcess]:
    broker = StromProcess(tmp_path / "data", overrides={
        "strom.request.receive.timeout.ms": str(TIMEOUT_MS),
        "socket.request.max.bytes": str(8 * MIB),
        "message.max.bytes": str(8 * MIB),
        "queued.max.request.bytes": str(REQUEST_MEMORY),
    })
    broker.start()
    yield broker
    broker.stop()


def test_large_requests_wait_for_request_memory(strom_small_memory: StromProcess) -> None:
    """Large requests beyond queued.max.request.bytes: reading pauses instead of
    allocating; small requests are still served; stalled requests close."""
    strom = strom_small_memory
    assert strom.proc is not None
    size = 8 * MIB
    body = bytes(6 * MIB)  # never complete
    senders = [connect(strom) for _ in range(8)]
    before = rss_bytes(strom.proc.pid)
    held_back = 0
    with round_trips(strom) as loop:
        for sock in senders:
            sock.sendall(struct.pack(">i", size))
            sock.settimeout(0.5)
            view = memoryview(body)
            try:
                while view:
                    n = sock.send(view[: 1 << 20])
                    view = view[n:]
                    loop.once()
            except TimeoutError:
                held_back += 1
        loop.run(200)
        grown = rss_bytes(strom.proc.pid) - before
        p99 = loop.p99(f"8 x 6 MiB of 8 MiB requests, queued.max.request.bytes "
                       f"{REQUEST_MEMORY // MIB} MiB")
    print(f"{held_back} of 8 senders held back; RSS grew {grown / MIB:.1f} MiB")
    # At most three fit in the budget (two, and one overshooting it); of the others
    # the kernel's socket buffers (4 MiB of send buffer and the receive window,
    # which does not grow while the broker reads nothing) hold less than 6 MiB.
    assert held_back >= 3
    # The budget, one frame's overdraft past it (8 MiB: nothing complete is in
    # flight to free memory) and the allocator's slack from growing by copies.
    assert grown < REQUEST_MEMORY + 8 * MIB + 16 * MIB
    assert p99 < P99_LIMIT_S
    wait_all_closed(senders, timeout=TIMEOUT_MS / 1000 + 8)
    for sock in senders:
        sock.close()


def test_large_requests_beyond_request_memory_all_complete(
        strom_small_memory: StromProcess) -> None:
    """Six 6 MiB produce requests received side by side need 36 MiB of a 16 MiB
    request memory: partly received requests must not wait for each other
    forever; every one is appended."""
    strom = strom_small_memory
    with WireClient(strom.bootstrap) as client:
        client.request(3, 12, metadata_request("big"))  # auto-creates the topic
    batch = build_batch([RecordSpec(value=bytes([i]) * MIB) for i in range(6)])
    requests = [encode_request(0, 9, 1, produce_request("big", batch)) for _ in range(6)]
    socks = []
    for _ in requests:
        # Small send buffers, so that the six arrive side by side.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        sock.connect(("127.0.0.1", strom.port))
        sock.setblocking(False)
        socks.append(sock)
    sent = [0] * len(socks)
    deadline = time.monotonic() + 30
    while any(n < len(requests[0]) for n in sent) and time.monotonic() < deadline:
        for i, sock in enumerate(socks):
            with contextlib.suppress(BlockingIOError):
                sent[i] += sock.send(requests[i][sent[i] : sent[i] + 64 * 1024])
    for sock in socks:
        sock.settimeout(30)
        frame = read_frame(sock)
        assert frame[:4] == struct.pack(">i", 1)
        sock.close()
    with WireClient(strom.bootstrap) as client:
        response = client.request(ApiKey.LIST_OFFSETS, 9, lo.ListOffsetsRequest(
            replica_id=-1, isolation_level=0, topics=(lo.ListOffsetsTopic(name="big", partitions=(
                lo.ListOffsetsPartition(partition_index=0, current_leader_epoch=-1,
                                        timestamp=-1),)),)))
    assert response.topics[0].partitions[0].offset == 36


def test_max_connections_per_ip_refuses_at_accept(strom: StromProcess) -> None:
    """max.connections.per.ip.overrides=127.0.0.2:20: the 21st connection from
    127.0.0.2 is closed at once; 127.0.0.1 is not affected; one WARNING line."""
    socks = [connect(strom, source="127.0.0.2") for _ in range(25)]
    try:
        deadline = time.monotonic() + 10
        refused: list[socket.socket] = []
        while len(refused) < 5 and time.monotonic() < deadline:
            refused = [s for s in socks[20:] if s in refused or closed_by_broker(s)]
        assert len(refused) == 5
        for sock in socks[:20]:
            sock.sendall(API_VERSIONS_V0)
            read_frame(sock)
        with round_trips(strom) as loop:
            loop.run(5)
    finally:
        for sock in socks:
            sock.close()
    log = strom.log_path.read_text()
    assert log.count("refused a connection from 127.0.0.2") == 1, log[-2000:]


def test_max_connections_refuses_at_accept(tmp_path: Path) -> None:
    broker = StromProcess(tmp_path / "data", overrides={"max.connections": "10"})
    broker.start()
    socks: list[socket.socket] = []
    try:
        # start() probed the port with one connection, maybe not yet counted out.
        socks = [connect(broker) for _ in range(15)]
        deadline = time.monotonic() + 10
        refused = 0
        while time.monotonic() < deadline:
            refused = sum(1 for s in socks[9:] if closed_by_broker(s))
            if refused >= 5:
                break
        assert refused >= 5
        served = 0
        for sock in socks[:9]:
            sock.sendall(API_VERSIONS_V0)
            read_frame(sock)
            served += 1
        assert served == 9
        assert "max.connections=10 reached" in broker.log_path.read_text()
    finally:
        for sock in socks:
            sock.close()
        broker.stop()
