"""A share group survives kill -9 of its broker (`strom serve` subprocess): every
answered heartbeat's records were durable in __consumer_offsets, so after the restart
the group has its member, epoch and assignment, the member heartbeats on with its epoch,
and the partitions it was assigned are not initialized again."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from tests.broker.raw_client import RawClient
from tests.process import StromProcess
from tests.wire import metadata_request

WAIT = 30.0


def _until(action: Any, what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        result = action()
        if result is not None:
            return result
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _beat(bootstrap: str, member: str, epoch: int) -> Any:
    with RawClient(bootstrap) as client:
        client.send(ApiKey.FIND_COORDINATOR, 4, {"key_type": 0, "coordinator_keys": ["crash"]})
        return client.send(ApiKey.SHARE_GROUP_HEARTBEAT, 1, {
            "group_id": "crash", "member_id": member, "member_epoch": epoch, "rack_id": None,
            "subscribed_topic_names": ["crash-topic"] if epoch == 0 else None})


def _describe(bootstrap: str) -> Any:
    with RawClient(bootstrap) as client:
        return client.send(ApiKey.SHARE_GROUP_DESCRIBE, 1, {
            "group_ids": ["crash"], "include_authorized_operations": False}).groups[0]


def test_a_share_group_survives_kill_9(tmp_path: Path) -> None:
    broker = StromProcess(tmp_path / "data", overrides={
        "auto.create.topics.enable": "true", "num.partitions": "3",
        "offsets.topic.num.partitions": "1"})
    broker.start()
    try:
        with RawClient(broker.bootstrap) as client:
            client.send(ApiKey.METADATA, 12, metadata_request("crash-topic"))
        member = str(uuid.uuid4())
        joined = _until(lambda: (r := _beat(broker.bootstrap, member, 0)).error_code
                        == ErrorCode.none and r or None, "the member to join")
        epoch = joined.member_epoch

        def assigned() -> Any:
            nonlocal epoch
            answer = _beat(broker.bootstrap, member, epoch)
            assert answer.error_code == ErrorCode.none, answer
            epoch = answer.member_epoch
            return answer if answer.assignment and answer.assignment.topic_partitions \
                else None
        _until(assigned, "the partitions to be assigned")
        before = _describe(broker.bootstrap)
        assert [len(tp.partitions) for tp in before.members[0].assignment.topic_partitions] \
            == [3]

        broker.kill()
        broker.start()
        after = _until(lambda: (d := _describe(broker.bootstrap)).error_code
                       == ErrorCode.none and d or None, "the group to load")
        assert (after.group_epoch, after.assignment_epoch) == (before.group_epoch,
                                                               before.assignment_epoch)
        assert after.members == before.members
        again = _beat(broker.bootstrap, member, epoch)
        assert (again.error_code, again.member_epoch) == (ErrorCode.none, epoch)
        # Its partitions stay initialized: no new epoch, no re-initialization.
        assert _describe(broker.bootstrap).group_epoch == before.group_epoch
    finally:
        broker.stop()
