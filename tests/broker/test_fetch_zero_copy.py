"""Fetch responses sent from mapped segment files (FileRegion.view, on uvloop)
and from pread copies (asyncio's own loop), through real sockets: large topics
spanning several segments read by real clients, pipelined fetches answered in
order, segments deleted or truncated while a response is still being written,
and clients that hang up mid-response."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from strom.protocol.records import iter_batches_records
from strom.testing import EmbeddedBroker
from tests.interop.clients import consume_confluent, consume_kafka_python, wait_until

SEGMENT_BYTES = 1 << 20
VALUE_SIZE = 16 * 1024
FETCH_VERSION = 4


@pytest.fixture(scope="module", params=["uvloop", "asyncio"])
def zc_broker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
              ) -> Iterator[EmbeddedBroker]:
    """A broker of this module's own on uvloop (mapped sends) or asyncio (copies)."""
    policy = asyncio.get_event_loop_policy()
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        broker = EmbeddedBroker(tmp_path_factory.mktemp("zero-copy"), overrides={
            "num.partitions": "1", "auto.create.topics.enable": "true",
            "log.segment.bytes": str(SEGMENT_BYTES),
        }).start()
    finally:
        asyncio.set_event_loop_policy(policy)

    assert _mapped(broker) == (request.param == "uvloop")
    try:
        yield broker
    finally:
        broker.close()


def _value(i: int) -> bytes:
    return (b"%08d" % i) * (VALUE_SIZE // 8)


def _produce(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5,
                         "batch.size": 256 * 1024, "message.max.bytes": 1_000_000})
    for i in range(count):
        producer.produce(topic, key=b"%d" % i, value=_value(i), partition=0)
    assert producer.flush(60) == 0


def _segments(broker: EmbeddedBroker, topic: str) -> int:
    async def count() -> int:
        return len(broker.services.replicas.partitions[(topic, 0)].log.segments)

    return int(broker.run(count()))


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">h", len(raw)) + raw


def _fetch_frame(correlation_id: int, topic: str, offset: int, max_bytes: int) -> bytes:
    """A hand-encoded Fetch v4 request for partition 0 of `topic`."""
    body = (
        struct.pack(">hhi", 1, FETCH_VERSION, correlation_id) + _string("zero-copy-test")
        + struct.pack(">iiiib", -1, 100, 1, max_bytes, 0)
        + struct.pack(">i", 1) + _string(topic)
        + struct.pack(">i", 1) + struct.pack(">iqi", 0, offset, max_bytes)
    )
    return struct.pack(">i", len(body)) + body


def _api_versions_frame(correlation_id: int) -> bytes:
    body = struct.pack(">hhi", 18, 0, correlation_id) + _string("zero-copy-test")
    return struct.pack(">i", len(body)) + body


def _receive_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise ConnectionError(f"broker closed the connection after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def _receive_frame(sock: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", _receive_exactly(sock, 4))
    return _receive_exactly(sock, size)


def _parse_fetch(frame: bytes, topic: str) -> tuple[int, int, bytes]:
    """(correlation id, partition error code, records) of a Fetch v4 response."""
    correlation_id, _throttle, topics = struct.unpack_from(">iii", frame, 0)
    assert topics == 1
    pos = 12
    (length,) = struct.unpack_from(">h", frame, pos)
    assert frame[pos + 2:pos + 2 + length].decode() == topic
    pos += 2 + length
    partitions, index, error, _hw, _lso, aborted = struct.unpack_from(">iihqqi", frame, pos)
    assert (partitions, index) == (1, 0)
    pos += 30 + max(aborted, 0) * 16
    (size,) = struct.unpack_from(">i", frame, pos)
    pos += 4
    assert pos + max(size, 0) == len(frame)
    return correlation_id, error, frame[pos:]


def _values(records: bytes) -> list[tuple[int, bytes | None]]:
    return [(r.offset, r.value) for _h, batch in iter_batches_records(records) for r in batch]


def _connect(broker: EmbeddedBroker, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        # Set before connecting so the window stays small: the broker cannot push
        # the response into the kernel and must hold the rest while we wait.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(30)
    sock.connect((broker.host, broker.port))
    return sock


def _mapped(broker: EmbeddedBroker) -> bool:
    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    return str(broker.run(loop_module())).startswith("uvloop")


def _fresh_topic(broker: EmbeddedBroker, name: str, count: int) -> str:
    topic = f"zc-{name}-{id(broker)}"
    _produce(broker.bootstrap, topic, count)
    assert _segments(broker, topic) > 3
    return topic


@pytest.mark.parametrize("consume", [consume_confluent, consume_kafka_python],
                         ids=["confluent", "kafka-python"])
def test_real_clients_read_a_topic_spanning_several_segments(
        zc_broker: EmbeddedBroker, consume: Any, request: pytest.FixtureRequest) -> None:
    count = 400  # 6.4 MiB of values over 1 MiB segments
    topic = _fresh_topic(zc_broker, request.node.callspec.id.replace("-", ""), count)
    got = consume(zc_broker.bootstrap, topic, count, 60)
    assert [(r.offset, r.key, r.value) for r in got] == [
        (i, b"%d" % i, _value(i)) for i in range(count)
    ]


def test_pipelined_fetches_are_answered_in_request_order(zc_broker: EmbeddedBroker) -> None:
    count = 300
    topic = _fresh_topic(zc_broker, "order", count)
    offsets = [0, 250, 17, 120, 299, 64, 180, 3]
    with _connect(zc_broker) as sock:
        frames = []
        for i, offset in enumerate(offsets):
            frames.append(_fetch_frame(100 + 2 * i, topic, offset, 512 * 1024))
            frames.append(_api_versions_frame(101 + 2 * i))  # a small reply in between
        sock.sendall(b"".join(frames))
        for i, offset in enumerate(offsets):
            correlation_id, error, records = _parse_fetch(_receive_frame(sock), topic)
            assert (correlation_id, error) == (100 + 2 * i, 0)
            values = [(o, v) for o, v in _values(records) if o >= offset]
            assert values[0] == (offset, _value(offset))
            assert values == [(o, _value(o)) for o in range(offset, offset + len(values))]
            assert struct.unpack_from(">i", _receive_frame(sock))[0] == 101 + 2 * i


def test_segments_deleted_while_the_response_is_written(zc_broker: EmbeddedBroker) -> None:
    count = 600  # 9.6 MiB: more than the socket buffers hold
    topic = _fresh_topic(zc_broker, "retention", count)
    with _connect(zc_broker, rcvbuf=64 * 1024) as sock:
        sock.sendall(_fetch_frame(7, topic, 0, 64 << 20))
        (size,) = struct.unpack(">i", _receive_exactly(sock, 4))  # the response is under way

        async def delete_old_segments() -> int:
            log = zc_broker.services.replicas.partitions[(topic, 0)].log
            paths = [s.path for s in log.segments[:-1]]
            # What retention does to the segments being sent: unlink and close.
            log.advance_log_start_offset(log.segments[-1].base_offset)
            return sum(1 for p in paths if not Path(p).exists())

        assert zc_broker.run(delete_old_segments()) > 3
        correlation_id, error, records = _parse_fetch(_receive_exactly(sock, size), topic)
    assert (correlation_id, error) == (7, 0)
    assert _values(records) == [(i, _value(i)) for i in range(count)]


def test_log_truncated_under_an_unsent_response(zc_broker: EmbeddedBroker) -> None:
    """The active segment is cut while its bytes are still to be sent. With a
    copy the old bytes arrive; with a mapping the kernel refuses the write
    (EFAULT) and the connection closes. Either way nothing else is hurt."""
    count = 800  # 12.8 MiB: the active segment comes last, past any socket buffer
    topic = _fresh_topic(zc_broker, "truncate", count)
    with _connect(zc_broker, rcvbuf=64 * 1024) as sock:
        sock.sendall(_fetch_frame(9, topic, 0, 64 << 20))
        (size,) = struct.unpack(">i", _receive_exactly(sock, 4))

        async def truncate_active_segment() -> int:
            log = zc_broker.services.replicas.partitions[(topic, 0)].log
            base = log.segments[-1].base_offset
            log.truncate_to(base)
            return int(base)

        base = zc_broker.run(truncate_active_segment())
        try:
            frame = _receive_exactly(sock, size)
        except (ConnectionError, OSError):
            frame = None
    if _mapped(zc_broker):
        # 12.8 MiB cannot all be in socket buffers (4 MiB at most here): the cut
        # bytes were still in uvloop's queue as a mapped view.
        assert frame is None
    if frame is not None:
        _cid, error, records = _parse_fetch(frame, topic)
        assert error == 0
        assert _values(records) == [(i, _value(i)) for i in range(count)]
    # The broker still answers, from what is left of that log.
    with _connect(zc_broker) as sock:
        sock.sendall(_fetch_frame(10, topic, 0, 64 << 20))
        _cid, error, records = _parse_fetch(_receive_frame(sock), topic)
    assert error == 0
    assert _values(records) == [(i, _value(i)) for i in range(base)]


def test_client_hanging_up_mid_response_leaves_the_broker_serving(
        zc_broker: EmbeddedBroker) -> None:
    count = 500
    topic = _fresh_topic(zc_broker, "hangup", count)
    for _ in range(5):
        with _connect(zc_broker, rcvbuf=64 * 1024) as sock:
            sock.sendall(_fetch_frame(1, topic, 0, 64 << 20) + _fetch_frame(2, topic, 0, 1024))
            _receive_exactly(sock, 100_000)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # A reset, not a close, for the last one: the broker sees ECONNRESET mid-write.

    async def open_connections() -> int:
        return len(zc_broker._broker._connections)

    wait_until(lambda: zc_broker.run(open_connections()) == 0, 30,
               what="the broker to drop the hung-up connections")
    got = consume_confluent(zc_broker.bootstrap, topic, count, 60)
    assert [r.value for r in got] == [_value(i) for i in range(count)]
