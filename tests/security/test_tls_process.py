"""`strom serve` (uvloop, where plaintext fetches hand mapped segment views
to the transport) with a TLS listener: a large consume over TLS gets every
byte, from regions far above the mapping threshold, while the same data is
consumed over the plaintext listener of the same broker."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer

from strom.testing.tls import TestCertificateAuthority
from tests.process import StromProcess, free_port


def consume_all(bootstrap: str, topic: str, count: int, **settings: Any) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "fetch.max.bytes": 8 << 20,
                         "max.partition.fetch.bytes": 4 << 20, **settings})
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < count and time.monotonic() < deadline:
            for message in consumer.consume(500, 1.0):
                assert message.error() is None, message.error()
                payload = message.value()
                assert payload is not None
                got.append(payload)
    finally:
        consumer.close()
    return got


def test_large_consume_over_tls_from_strom_serve(tmp_path: Path) -> None:
    ca = TestCertificateAuthority(tmp_path / "ca")
    port, tls_port = free_port(), free_port()
    broker = StromProcess(tmp_path / "data", port=port, overrides={
        "listeners": f"PLAINTEXT://127.0.0.1:{port},SSL://127.0.0.1:{tls_port}",
        **ca.server_overrides(),
    })
    broker.start()
    try:
        topic = "big"
        values = [bytes([i % 251]) * 200_000 for i in range(150)]  # 30 MB, 200 KB records
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5,
                             "message.max.bytes": 1_000_000})
        for value in values:
            producer.produce(topic, value)
        assert producer.flush(60) == 0
        over_tls = consume_all(f"127.0.0.1:{tls_port}", topic, len(values),
                               **ca.confluent_config())
        assert len(over_tls) == len(values)
        assert over_tls == values
        assert consume_all(broker.bootstrap, topic, len(values)) == values
    finally:
        broker.stop()
