"""Quotas by user principal: a SASL user's /users/<name> quota throttles that
user's clients and no one else's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from strom.errors import ErrorCode
from strom.testing import EmbeddedBroker
from tests.security.test_quotas_admin import alter_quotas, entry
from tests.wire import WireClient


def _throttle_events(config: dict[str, Any], topic: str) -> list[float]:
    events: list[float] = []
    producer = Producer({**config, "linger.ms": 5, "batch.size": 65_536,
                         "throttle_cb": lambda e: events.append(e.throttle_time)})
    for _ in range(300):  # 300 kB: 30 kB/s over the first 10 s span
        producer.produce(topic, b"u" * 1000)
        producer.poll(0)
    assert producer.flush(30) == 0
    producer.poll(0.5)  # throttle callbacks are served by poll
    return events


def test_user_quota_applies_to_that_user_only(tmp_path: Path) -> None:
    users = {"alice": "alice-secret", "bob": "bob-secret"}
    with EmbeddedBroker(tmp_path / "data", sasl_users=users,
                        overrides={"auto.create.topics.enable": "true"}) as broker:
        with WireClient(broker.bootstrap) as client:
            assert alter_quotas(client, entry({"producer_byte_rate": 10_000.0}, user="alice")
                                ) == [(ErrorCode.none, None)]
        assert _throttle_events(broker.sasl_config("alice", "PLAIN"), "by-alice")
        assert _throttle_events(broker.sasl_config("bob", "SCRAM-SHA-256"), "by-bob") == []
        # Unauthenticated clients are User:ANONYMOUS: not alice either.
        assert _throttle_events({"bootstrap.servers": broker.bootstrap}, "by-anonymous") == []
