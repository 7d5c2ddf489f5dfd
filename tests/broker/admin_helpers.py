"""Helpers for the admin API tests: confluent-kafka clients kept alive per broker."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from strom.testing import EmbeddedBroker

TIMEOUT = 15

_clients: dict[str, AdminClient] = {}


def admin(broker: EmbeddedBroker) -> AdminClient:
    """One client per broker address, kept alive: a destroyed client fails its futures."""
    if broker.bootstrap not in _clients:
        _clients[broker.bootstrap] = AdminClient({"bootstrap.servers": broker.bootstrap})
    return _clients[broker.bootstrap]


def forget(broker: EmbeddedBroker) -> None:
    """Drop the client of a broker that is about to stop."""
    _clients.pop(broker.bootstrap, None)


def create(broker: EmbeddedBroker, name: str, partitions: int = 1,
           config: dict[str, str] | None = None) -> None:
    futures = admin(broker).create_topics([NewTopic(name, partitions, config=config or {})],
                                          operation_timeout=10)
    futures[name].result(TIMEOUT)


def error_of(future: Any) -> KafkaError:
    with pytest.raises(KafkaException) as info:
        future.result(TIMEOUT)
    error: KafkaError = info.value.args[0]
    return error
