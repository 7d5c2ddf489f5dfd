"""The Java consumer uses incremental fetch sessions (KIP-227) against strom:
it creates a session, fetches incrementally, and reads every record of a
200-partition topic, including records produced while its session is open.
(librdkafka 2.x does not use fetch sessions: it always sends epoch -1.)"""

from __future__ import annotations

import threading
import time
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from strom.testing import EmbeddedBroker

from .clients import run_kafka_tool

PARTITIONS = 200


def _produce(bootstrap: str, topic: str, round_: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for p in range(PARTITIONS):
        producer.produce(topic, value=f"r{round_}-p{p}".encode(), partition=p)
    assert producer.flush(30) == 0


def _max_epoch(broker: EmbeddedBroker) -> int:
    sessions = broker._broker.services.fetch_sessions.sessions  # noqa: SLF001
    return max((s.epoch for s in list(sessions.values())), default=0)


def test_java_consumer_reads_through_incremental_sessions(java_tools: Any) -> None:
    with EmbeddedBroker() as broker:
        topic = "java-sessions"
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)
        _produce(broker.bootstrap, topic, 0)
        result: dict[str, Any] = {}

        def consume() -> None:
            result["proc"] = run_kafka_tool(
                "console-consumer", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                "--from-beginning", "--max-messages", str(2 * PARTITIONS),
                "--timeout-ms", "60000", "--consumer-property", "fetch.max.wait.ms=100",
                timeout=120)

        thread = threading.Thread(target=consume, daemon=True)
        thread.start()
        # Wait for incremental fetches (a session past its first epochs), then
        # produce a second round that only they can deliver.
        deadline = time.monotonic() + 60
        while _max_epoch(broker) < 3 and time.monotonic() < deadline and thread.is_alive():
            time.sleep(0.05)
        assert _max_epoch(broker) >= 3, "the Java consumer did not fetch incrementally"
        _produce(broker.bootstrap, topic, 1)
        thread.join(120)
        assert not thread.is_alive()
        # (Kafka 4.4 also prints a deprecation notice for --consumer-property.)
        values = {line for line in result["proc"].stdout.split() if line.startswith(("r0-", "r1-"))}
        expected = {f"r{r}-p{p}" for r in (0, 1) for p in range(PARTITIONS)}
        assert values == expected
        assert broker._broker.services.fetch_sessions.created >= 1  # noqa: SLF001
