"""Without strom.http.listener nothing can read the request path's counters,
so the broker keeps none (issue 19: per-request cost); with it, the same
requests are counted. Both through real sockets."""

from __future__ import annotations

from pathlib import Path

import pytest

from strom.protocol.api import ApiKey
from strom.protocol.records import RecordSpec, build_batch
from strom.testing import EmbeddedBroker
from tests.wire import WireClient, metadata_request, produce_request

pytestmark = pytest.mark.timeout(60)


def _produce_one(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap) as client:
        client.request(ApiKey.METADATA, 12, metadata_request("counted"))
        batch = build_batch([RecordSpec(value=b"v" * 10)])
        response = client.request(ApiKey.PRODUCE, 9, produce_request("counted", batch))
        assert response.responses[0].partition_responses[0].error_code == 0


@pytest.mark.parametrize("listener", [False, True])
def test_counters_kept_only_with_the_http_listener(tmp_path: Path, listener: bool) -> None:
    overrides = {"strom.http.listener": "http://127.0.0.1:0"} if listener else {}
    with EmbeddedBroker(tmp_path, overrides=overrides) as broker:
        _produce_one(broker)
        stats = broker.services.stats
        assert stats.enabled is listener
        if listener:
            assert stats.topics["counted"].messages_in == 1
            assert stats.requests[ApiKey.PRODUCE].count == 1
        else:
            assert stats.topics == {}
            assert stats.requests == {}
