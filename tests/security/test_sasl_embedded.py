"""strom.testing's EmbeddedBroker with SASL users, and strom.views passing
client security settings through to its clients."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from strom.testing import EmbeddedBroker
from strom.views import Context, EventRegistry, Publisher, SQLiteStore, View, ensure_topic

USERS = {"alice": 'tricky "pass\\word"', "svc": "svc-secret"}


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(sasl_users=USERS) as b:
        yield b


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_embedded_broker_with_sasl_users(broker: EmbeddedBroker, mechanism: str) -> None:
    admin = AdminClient(broker.sasl_config("alice", mechanism))
    assert admin.list_topics(timeout=10).brokers
    wrong = AdminClient({**broker.sasl_config("alice", mechanism), "sasl.password": "x",
                         "log_level": 0})
    with pytest.raises(KafkaException):
        wrong.list_topics(timeout=2)


@dataclass(frozen=True)
class Paid:
    order: str
    amount: int


def test_views_over_sasl(broker: EmbeddedBroker, tmp_path: Path) -> None:
    config = broker.sasl_config("svc", "SCRAM-SHA-512")
    bootstrap = config.pop("bootstrap.servers")
    registry = EventRegistry()
    registry.register(Paid, version=1)
    ensure_topic(bootstrap, "payments", partitions=1, client_extra=config)
    with Publisher(bootstrap, registry, config=config) as publisher:
        for n in range(3):
            publisher.publish("payments", Paid(f"o-{n}", n), key=f"o-{n}")
    view = View("totals", bootstrap=bootstrap, topics=["payments"], registry=registry,
                store=SQLiteStore(str(tmp_path / "totals.db")), consumer_config=config,
                producer_config=config)

    @view.on(Paid)
    def paid(event: Paid, ctx: Context) -> None:
        ctx.put("total", "all", (ctx.get("total", "all") or 0) + event.amount)

    with view:
        view.catch_up(timeout=30)
        with view.snapshot() as snapshot:
            assert snapshot.get("total", "all") == 3
