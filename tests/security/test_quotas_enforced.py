"""Client quotas enforced against real clients (confluent-kafka / librdkafka):
the byte rates hold within 10% (the issue's resource goal, measured here with
a generous window), throttle_time_ms reaches the client, the connection is
muted, request_percentage and controller_mutation_rate act as in Kafka.

The broker measures over quota.window.num=3 windows (Kafka's default is 11)
so a test gets past the first burst (the span counts as at least num - 1
windows, so a new client's first num - 1 seconds of quota pass at once) in
2 s instead of 10, and so the bursts the model allows after it forgets a
sample (up to num - 1 seconds of quota) stay small against the 12 s
measured; the model is the same (test_quotas_model.py checks it with the
defaults). Figures: docs/security.md "Client quotas".
"""

from __future__ import annotations

import datetime
import importlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.protocol.records import RecordSpec, build_batch
from strom.testing import EmbeddedBroker
from tests.security.test_quotas_admin import alter_quotas, entry
from tests.wire import WireClient, metadata_request, produce_request

QUOTA = 1_000_000  # bytes/s
WARM_UP_S = 2.0
MEASURE_S = 12.0


@pytest.fixture(scope="module")
def quota_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(tmp_path_factory.mktemp("quotas"),
                        overrides={"quota.window.num": "3", "controller.quota.window.num": "3",
                                   "num.partitions": "1"}) as b:
        yield b


def set_quota(broker: EmbeddedBroker, ops: dict[str, float | None], **entity: str | None
              ) -> None:
    with WireClient(broker.bootstrap) as client:
        assert alter_quotas(client, entry(ops, **entity)) == [(ErrorCode.none, None)]


class Stats:
    """librdkafka's statistics: bytes sent/received to brokers over time."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int, int]] = []  # (time, txbytes, rxbytes)
        self.throttle_max = 0
        self.throttle_events: list[int] = []
        self._lock = threading.Lock()

    def on_stats(self, text: str) -> None:
        stats = json.loads(text)
        brokers = [b for b in stats["brokers"].values() if b["nodeid"] >= 0]
        with self._lock:
            self.samples.append((time.monotonic(), sum(b["txbytes"] for b in brokers),
                                 sum(b["rxbytes"] for b in brokers)))
            self.throttle_max = max([self.throttle_max,
                                     *(b["throttle"]["max"] for b in brokers)])

    def on_throttle(self, event: Any) -> None:
        self.throttle_events.append(int(event.throttle_time * 1000))

    def rate(self, start: float, end: float, column: int) -> tuple[float, float]:
        """(bytes/s over the samples closest inside [start, end], seconds covered)."""
        with self._lock:
            inside = [s for s in self.samples if start <= s[0] <= end]
        assert len(inside) >= 2, self.samples
        first, last = inside[0], inside[-1]
        span = last[0] - first[0]
        return (last[column] - first[column]) / span, span


def client_config(broker: EmbeddedBroker, client_id: str, stats: Stats) -> dict[str, Any]:
    return {"bootstrap.servers": broker.bootstrap, "client.id": client_id,
            "statistics.interval.ms": 250, "stats_cb": stats.on_stats,
            "throttle_cb": stats.on_throttle}


def test_producer_byte_rate_holds(quota_broker: EmbeddedBroker, topic_name: str) -> None:
    set_quota(quota_broker, {"producer_byte_rate": float(QUOTA)}, client_id="quota-producer")
    stats = Stats()
    producer = Producer({**client_config(quota_broker, "quota-producer", stats),
                         "linger.ms": 5, "batch.size": 32_768, "acks": 1, "max.in.flight": 5,
                         "queue.buffering.max.kbytes": 256})
    value = b"x" * 1000
    # What the broker took: acknowledged bytes by the time of their
    # acknowledgement (what the client sent may still sit in socket buffers
    # of a muted connection).
    acked: list[float] = []

    def on_delivery(error: object, message: object) -> None:
        if error is None:
            acked.append(time.monotonic())

    started = time.monotonic()
    end = started + WARM_UP_S + MEASURE_S
    while time.monotonic() < end:
        try:
            producer.produce(topic_name, value, on_delivery=on_delivery)
        except BufferError:
            producer.poll(0.005)
    producer.poll(0)
    producer.purge()
    producer.flush(5)
    inside = [t for t in acked if started + WARM_UP_S <= t <= end]
    span = inside[-1] - inside[0]
    # Each 1,000-byte value costs about 1,010 bytes of a Produce request.
    rate = len(inside) * 1010 / span
    print(f"produce: {rate:,.0f} B/s over {span:.2f} s against a quota of {QUOTA:,} B/s; "
          f"throttle max {stats.throttle_max} ms, {len(stats.throttle_events)} throttle events")
    assert rate == pytest.approx(QUOTA, rel=0.10)
    assert stats.throttle_events and max(stats.throttle_events) > 0


def test_consumer_byte_rate_holds(quota_broker: EmbeddedBroker, topic_name: str) -> None:
    # 20 MB in the topic (more than 14 s at the quota), written by a client without one.
    producer = Producer({"bootstrap.servers": quota_broker.bootstrap, "linger.ms": 20,
                         "batch.size": 16_384})
    value = b"y" * 1000
    for _ in range(20_000):
        while True:
            try:
                producer.produce(topic_name, value)
                break
            except BufferError:
                producer.poll(0.01)
    assert producer.flush(30) == 0
    set_quota(quota_broker, {"consumer_byte_rate": float(QUOTA)}, user=None,
              client_id="quota-consumer")
    stats = Stats()
    consumer = Consumer({**client_config(quota_broker, "quota-consumer", stats),
                         "group.id": f"g-{topic_name}", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "queued.max.messages.kbytes": 1024,
                         "max.partition.fetch.bytes": 65_536})
    consumer.subscribe([topic_name])
    try:
        received = 0
        started = time.monotonic()
        end = started + WARM_UP_S + MEASURE_S
        while time.monotonic() < end:
            for message in consumer.consume(500, 0.1):
                if message.error() is None:
                    received += len(message.value() or b"")
        rate, span = stats.rate(started + WARM_UP_S, end, 2)
    finally:
        consumer.close()
    print(f"consume: {rate:,.0f} B/s over {span:.2f} s against a quota of {QUOTA:,} B/s; "
          f"throttle max {stats.throttle_max} ms; {received:,} B received in all")
    assert received < 20_000_000  # the quota, not the end of the topic, stopped it
    # Never more than the quota (+10%). Below it the consumer loses the time of
    # each throttled fetch's round trip (it is answered empty and fetched again
    # after the throttle, as in Kafka), which this loaded 2-core machine
    # stretches: measured 0.73-1.01 of the quota here (docs/security.md).
    assert QUOTA * 0.75 <= rate <= QUOTA * 1.10
    assert stats.throttle_events and max(stats.throttle_events) > 0


def test_throttled_response_and_muted_connection(quota_broker: EmbeddedBroker,
                                                 topic_name: str) -> None:
    """Raw Produce: the response over the quota carries throttle_time_ms and
    the next request is not read before it has passed."""
    set_quota(quota_broker, {"producer_byte_rate": 10_000.0}, client_id="strom-tests")
    batch = _batch(60_000)
    with WireClient(quota_broker.bootstrap) as client:
        client.request(ApiKey.METADATA, 12, metadata_request(topic_name))
        first = client.request(ApiKey.PRODUCE, 9, produce_request(topic_name, batch))
        # 60 kB against 10 kB/s over a 2 s span: (30 - 10) / 10 * 2 s = 4 s.
        throttle_ms = int(first.throttle_time.total_seconds() * 1000)
        assert 3500 <= throttle_ms <= 4500, throttle_ms
        sent = time.monotonic()
        second = client.request(ApiKey.PRODUCE, 9, produce_request(topic_name, _batch(10)))
        waited = time.monotonic() - sent
        assert second.responses[0].partition_responses[0].error_code == ErrorCode.none
    assert waited >= throttle_ms / 1000 * 0.9, (waited, throttle_ms)
    set_quota(quota_broker, {"producer_byte_rate": None}, client_id="strom-tests")


def _batch(size: int) -> bytes:
    return build_batch([RecordSpec(value=b"z" * size)])


def create_topics(client: WireClient, version: int, *topics: tuple[str, int]) -> Any:
    module = importlib.import_module(f"kio.schema.create_topics.v{version}.request")
    return client.request(ApiKey.CREATE_TOPICS, version, module.CreateTopicsRequest(
        topics=tuple(module.CreatableTopic(name=name, num_partitions=count,
                                           replication_factor=1, assignments=(), configs=())
                     for name, count in topics),
        timeout=datetime.timedelta(seconds=10), validate_only=False))


def test_controller_mutation_rate(quota_broker: EmbeddedBroker) -> None:
    """CreateTopics v6+ gets THROTTLING_QUOTA_EXCEEDED once the token bucket
    (3 partitions a second, 3 windows: 9 at most) is spent; v5 is only
    throttled (KIP-599)."""
    set_quota(quota_broker, {"controller_mutation_rate": 3.0}, client_id="strom-tests")
    try:
        with WireClient(quota_broker.bootstrap) as client:
            first = create_topics(client, 7, ("mut-a", 8), ("mut-b", 8), ("mut-c", 1))
            codes = [t.error_code for t in first.topics]
            # 8 of 9 tokens, then 8 more (the bucket may go below zero once),
            # then nothing until it is back at zero: 7 tokens owed at 3 a second.
            assert codes == [ErrorCode.none, ErrorCode.none,
                             ErrorCode.throttling_quota_exceeded]
            throttle_ms = first.throttle_time.total_seconds() * 1000
            assert 2000 <= throttle_ms <= 2400, throttle_ms
            # The permissive version creates and only throttles. (The connection
            # was muted for the first throttle: the bucket is back near zero.)
            sent = time.monotonic()
            old = create_topics(client, 5, ("mut-d", 2))
            assert time.monotonic() - sent >= throttle_ms / 1000 * 0.9
            assert [t.error_code for t in old.topics] == [ErrorCode.none]
            assert old.throttle_time.total_seconds() > 0.3
    finally:
        set_quota(quota_broker, {"controller_mutation_rate": None}, client_id="strom-tests")


def test_request_percentage(quota_broker: EmbeddedBroker, topic_name: str) -> None:
    """Handler time over request_percentage throttles, bounded by one window;
    ApiVersions stays exempt."""
    from kio.schema.api_versions.v3.request import ApiVersionsRequest

    set_quota(quota_broker, {"request_percentage": 0.5}, client_id="strom-tests")
    try:
        with WireClient(quota_broker.bootstrap) as client:
            throttles = []
            for _ in range(3000):  # 0.5% over a 2 s span is 10 ms of handler time
                response = client.request(ApiKey.METADATA, 12, metadata_request(topic_name))
                throttles.append(int(response.throttle_time.total_seconds() * 1000))
                if throttles[-1]:
                    break
            assert throttles[-1] > 0, f"no throttle after {len(throttles)} requests"
            assert throttles[-1] <= 1000  # one quota window at most
            versions = client.request(ApiKey.API_VERSIONS, 3, ApiVersionsRequest(
                client_software_name="t", client_software_version="1"))
            assert versions.throttle_time.total_seconds() == 0
    finally:
        set_quota(quota_broker, {"request_percentage": None}, client_id="strom-tests")


def test_connection_creation_rate(quota_broker: EmbeddedBroker) -> None:
    """Connections from an ip over its connection_creation_rate are closed
    unserved once the throttle time has passed (at most one window); other
    ips are not affected. The clients connect from 127.0.0.2 (loopback too)."""
    from kio.schema.api_versions.v3.request import ApiVersionsRequest

    from tests.wire import encode_request

    set_quota(quota_broker, {"connection_creation_rate": 2.0}, ip="127.0.0.2")
    host, port = quota_broker.bootstrap.rsplit(":", 1)
    request = encode_request(ApiKey.API_VERSIONS, 3, 1, ApiVersionsRequest(
        client_software_name="t", client_software_version="1"))
    try:
        outcomes: list[bool] = []  # served or not, in order
        for _ in range(8):  # 2 a second over a 2 s span: 4 at once
            with socket.create_connection((host, int(port)), timeout=10,
                                          source_address=("127.0.0.2", 0)) as sock:
                sock.sendall(request)
                started = time.monotonic()
                try:
                    answer = sock.recv(4)
                except ConnectionResetError:  # closed with the request unread
                    answer = b""
                outcomes.append(bool(answer))
                if not answer:
                    assert time.monotonic() - started <= 1.5  # one window at most
        # The fifth in a row is over; waiting out refusals lets some more in.
        assert outcomes[:5] == [True, True, True, True, False], outcomes
        assert outcomes.count(False) >= 2, outcomes
        # Another address is not limited.
        with WireClient(quota_broker.bootstrap) as client:
            client.send_raw(request)
            assert client.read_frame()
    finally:
        set_quota(quota_broker, {"connection_creation_rate": None}, ip="127.0.0.2")
