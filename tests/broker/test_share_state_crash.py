"""Share state survives kill -9 (KIP-932): what the share coordinator
acknowledged before the broker was killed is read back after it restarts,
snapshots and the updates after them replayed, and its fencing still holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from strom.errors import ErrorCode
from tests.broker import share_state_client as api
from tests.process import StromProcess
from tests.wire import WireClient

GROUP = "crash-group"
TOPIC = "crash-topic"
def _batches(result: Any) -> list[tuple[int, int, int, int]]:
    return [(b.first_offset, b.last_offset, b.delivery_state, b.delivery_count)
            for b in result.state_batches]


def test_share_state_survives_kill_9(tmp_path: Path) -> None:
    broker = StromProcess(tmp_path / "data", overrides={
        "share.coordinator.state.topic.num.partitions": "3",
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
