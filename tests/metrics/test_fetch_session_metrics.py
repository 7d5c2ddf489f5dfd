"""/metrics shows the fetch session cache (KIP-227) as Kafka's FetchSessionCache
MBeans do: sessions, the partitions they hold, evictions."""

from __future__ import annotations

import pytest

from strom.protocol.api import ApiKey
from strom.testing import EmbeddedBroker
from tests.broker.raw_client import RawClient
from tests.metrics.scrape import scrape, wait_for

pytestmark = pytest.mark.timeout(120)


def _fetch(client: RawClient, topic: str, session_id: int, epoch: int, partitions: int) -> int:
    response = client.send(ApiKey.FETCH, 12, {
        "replica_id": -1, "max_wait": 0, "min_bytes": 0, "max_bytes": 1 << 20,
        "isolation_level": 0, "session_id": session_id, "session_epoch": epoch,
        "topics": [{"topic": topic, "partitions": [
            {"partition": p, "fetch_offset": 0, "partition_max_bytes": 1 << 20}
            for p in range(partitions)]}],
        "forgotten_topics_data": [], "rack_id": ""})
    assert response.error_code == 0
    return int(response.session_id)


def test_fetch_session_metrics(tmp_path_factory: pytest.TempPathFactory) -> None:
    overrides = {"strom.http.listener": "http://127.0.0.1:0", "num.partitions": "3",
                 "auto.create.topics.enable": "true"}
    with (EmbeddedBroker(tmp_path_factory.mktemp("fs-metrics"), overrides=overrides) as broker,
          RawClient(broker.bootstrap) as client):
        client.send(ApiKey.METADATA, 4, {"topics": [{"name": "sessions"}],
                                         "allow_auto_topic_creation": True})
        before = scrape(broker.http_url)
        assert before.value("strom_fetch_sessions") == 0
        assert before.types["strom_fetch_session_evictions"] == "counter"
        session_id = _fetch(client, "sessions", 0, 0, 3)
        assert session_id != 0
        wait_for(broker.http_url, lambda s: s.value("strom_fetch_sessions") == 1
                 and s.value("strom_fetch_session_partitions") == 3)
        _fetch(client, "sessions", session_id, -1, 3)  # closes it
        after = scrape(broker.http_url)
        assert after.value("strom_fetch_sessions") == 0
        assert after.value("strom_fetch_session_evictions_total") == 0
