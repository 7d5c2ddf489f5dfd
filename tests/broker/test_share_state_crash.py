"""Share state survives kill -9 (KIP-932): what the share coordinator
acknowledged before the broker was killed is read back after it restarts,
snapshots and the updates after them replayed, and its fencing still holds;
the records below the latest snapshot were pruned first, and were not needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from strom.coordinator.share import SHARE_GROUP_STATE_TOPIC
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey, request_class
from strom.protocol.messages import build
from tests.broker import share_state_client as api
from tests.interop.clients import wait_until
from tests.process import StromProcess
from tests.wire import WireClient

GROUP = "crash-group"
TOPIC = "crash-topic"
def _log_start(client: WireClient) -> int:
    request = build(request_class(ApiKey.LIST_OFFSETS, 7), {
        "replica_id": -1, "isolation_level": 0, "topics": [{
            "name": SHARE_GROUP_STATE_TOPIC, "partitions": [
                {"partition_index": 0, "current_leader_epoch": -1, "timestamp": -2}]}]})
    answer = client.request(ApiKey.LIST_OFFSETS, 7, request).topics[0].partitions[0]
    assert answer.error_code == ErrorCode.none
    return int(answer.offset)


def _batches(result: Any) -> list[tuple[int, int, int, int]]:
    return [(b.first_offset, b.last_offset, b.delivery_state, b.delivery_count)
            for b in result.state_batches]


def test_share_state_survives_kill_9(tmp_path: Path) -> None:
    broker = StromProcess(tmp_path / "data", overrides={
        "share.coordinator.state.topic.num.partitions": "1",
        "share.coordinator.state.topic.prune.interval.ms": "50",
        # A snapshot after every 2 updates: the log holds both kinds.
        "share.coordinator.snapshot.update.records.per.snapshot": "2",
        "num.partitions": "1",
    })
    broker.start()
    try:
        with WireClient(broker.bootstrap) as client:
            topic_id = api.topic_id(client, TOPIC)
            assert api.find_coordinator(client, GROUP, topic_id).error_code == ErrorCode.none
            assert api.until_served(lambda: api.initialize(
                client, GROUP, topic_id, 0, 3, 0)).error_code == ErrorCode.none
            # The share partition's leader reads first, taking on its leader epoch.
            assert api.read(client, GROUP, topic_id, 7).error_code == ErrorCode.none
            writes = [(0, ((0, 9, 0, 1),)), (-1, ((0, 4, 2, 1),)), (-1, ((5, 5, 4, 5),)),
                      (2, ((6, 7, 0, 2),)), (-1, ((8, 12, 2, 1),))]
            for start, batches in writes:
                assert api.write(client, GROUP, topic_id, 3, 7, start, batches).error_code == \
                    ErrorCode.none
            before = api.read(client, GROUP, topic_id, 7)
            assert before.error_code == ErrorCode.none
            assert (before.state_epoch, before.start_offset) == (3, 2)
            assert _batches(before) == [(2, 4, 2, 1), (5, 5, 4, 5), (6, 7, 0, 2),
                                        (8, 12, 2, 1)]
            # Records: snapshot (initialize), update (the read's leader epoch), update,
            # snapshot, 2 updates, snapshot (offset 6): pruning deletes what is below
            # the latest snapshot.
            wait_until(lambda: _log_start(client) == 6, 30, what="pruning")
        broker.kill()
        broker.start()
        with WireClient(broker.bootstrap) as client:
            after = api.until_served(lambda: api.read(client, GROUP, topic_id, 7))
            assert after.error_code == ErrorCode.none
            assert (after.state_epoch, after.start_offset) == (3, 2)
            assert _batches(after) == _batches(before)
            # The epochs were replayed too: an older leader is still fenced.
            assert api.write(client, GROUP, topic_id, 3, 6, -1, ()).error_code == \
                ErrorCode.fenced_leader_epoch
            assert api.initialize(client, GROUP, topic_id, 0, 2, 0).error_code == \
                ErrorCode.fenced_state_epoch
    finally:
        broker.stop()
