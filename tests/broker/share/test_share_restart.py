"""A share partition's state survives a broker restart: acknowledged records
stay acknowledged, records acquired but never settled are delivered again
(persisted as AVAILABLE with their delivery count)."""

from __future__ import annotations

from strom.testing import EmbeddedBroker
from tests.broker.share.share_client import (
    ACCEPT,
    ShareClient,
    acquired,
    make_topic,
    produce,
)


def test_state_survives_restart() -> None:
    with EmbeddedBroker() as broker:
        topic_id = make_topic(broker, "durable")
        first = ShareClient(broker, "g")
        first.fetch(topic_id, [0])
        produce(broker, "durable", [f"v{i}".encode() for i in range(5)])
        assert acquired(first.fetch(topic_id, [0], max_wait_ms=2000)) == [(0, 4, 1)]
        accepted = first.acknowledge(topic_id, {0: [(0, 2, [ACCEPT])]})
        assert accepted.responses[0].partitions[0].error_code == 0
        first.close()
        broker.restart()
        again = ShareClient(broker, "g")
        assert acquired(again.fetch(topic_id, [0], max_wait_ms=2000)) == [(3, 4, 2)]
        handle = broker.services.share_partitions.handle(("g", topic_id, 0))
        assert handle.share.start_offset == 3
