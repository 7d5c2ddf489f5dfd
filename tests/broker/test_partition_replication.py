"""A replicated Partition over a real log, driven as the fetch and produce
handlers and the replica fetcher drive it (no sockets: the cluster tests in
tests/cluster/test_replication.py cover those): the HW waits for the ISR,
acks=all waiters complete or fail as Kafka's delayed produce does, follower
fetches answer a diverging epoch, and followers truncate."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from strom.broker.flusher import GroupCommitFlusher
from strom.broker.partition import Partition
from strom.broker.partition_config import log_config_for
from strom.clock import ManualClock
from strom.config import BrokerConfig, TopicConfig
from strom.errors import (
    NotEnoughReplicasAfterAppendError,
    NotEnoughReplicasError,
    NotLeaderOrFollowerError,
)
from strom.protocol.records import RecordSpec, build_batch
from strom.storage.log_open import open_log

REPLICAS = (1, 2, 3)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    loop.close()


def _partition(tmp_path: Path, node_id: int, *, min_isr: int = 2) -> Partition:
    config = TopicConfig({"min.insync.replicas": min_isr}, BrokerConfig({}))
    log = open_log(tmp_path / f"n{node_id}" / "t-0", log_config_for(config),
                   clock=ManualClock(), topic_id=uuid.uuid4())
    return Partition("t", 0, log.topic_id, log, config, leader_epoch=0, node_id=node_id,
                     clock=ManualClock(), flusher=GroupCommitFlusher(), leader_id=1)


def _append(partition: Partition, value: bytes) -> int:
    batch = memoryview(bytearray(build_batch([RecordSpec(value=value)])))
    return partition.append_records_as_leader(batch).info.last_offset + 1


def _follower_fetch(leader: Partition, replica: int, offset: int,
                    last_epoch: int = -1) -> tuple[bytes, tuple[int, int] | None]:
    fetched = leader.fetch_for_follower(replica, offset, last_epoch, 1 << 20,
                                        min_one_batch=True, zero_copy=False)
    return b"".join(bytes(r) for r in fetched.records), fetched.diverging_epoch


def test_acks_all_waits_for_every_isr_member(tmp_path: Path,
                                              loop: asyncio.AbstractEventLoop) -> None:
    async def run() -> None:
        leader = _partition(tmp_path, 1)
        leader.update_state(1, 0, REPLICAS, REPLICAS, 0)
        end = _append(leader, b"a")
        waiter = leader.replicated_to_isr(end)
        assert waiter is not None and leader.high_watermark == 0
        _follower_fetch(leader, 2, end)
        assert not waiter.done() and leader.high_watermark == 0
        _follower_fetch(leader, 3, end)
        assert waiter.done() and waiter.exception() is None
        assert leader.high_watermark == end
        assert leader.replicated_to_isr(end) is None
    loop.run_until_complete(run())


def test_isr_below_min_insync_replicas(tmp_path: Path,
                                       loop: asyncio.AbstractEventLoop) -> None:
    async def run() -> None:
        leader = _partition(tmp_path, 1)
        leader.update_state(1, 0, REPLICAS, REPLICAS, 0)
        end = _append(leader, b"a")
        waiter = leader.replicated_to_isr(end)
        assert waiter is not None
        # The controller commits an ISR of the leader alone: the HW passes the
        # batch, which is then short of min.insync.replicas.
        leader.update_state(1, 0, REPLICAS, (1,), 1)
        assert isinstance(waiter.exception(), NotEnoughReplicasAfterAppendError)
        with pytest.raises(NotEnoughReplicasError):
            leader.check_min_isr()
    loop.run_until_complete(run())


def test_waiters_fail_when_leadership_moves(tmp_path: Path,
                                            loop: asyncio.AbstractEventLoop) -> None:
    async def run() -> None:
        leader = _partition(tmp_path, 1)
        leader.update_state(1, 0, REPLICAS, REPLICAS, 0)
        waiter = leader.replicated_to_isr(_append(leader, b"a"))
        assert waiter is not None
        assert leader.update_state(2, 1, REPLICAS, REPLICAS, 1)  # now a follower of 2
        assert isinstance(waiter.exception(), NotLeaderOrFollowerError)
        with pytest.raises(NotLeaderOrFollowerError):
            _append(leader, b"b")
        with pytest.raises(NotLeaderOrFollowerError):
            leader.fetch(0, 1 << 20, read_committed=False, min_one_batch=True,
                         zero_copy=False)
    loop.run_until_complete(run())


def test_diverging_epoch_and_follower_truncation(tmp_path: Path,
                                                 loop: asyncio.AbstractEventLoop) -> None:
    async def run() -> None:
        leader = _partition(tmp_path, 1)
        leader.update_state(1, 0, REPLICAS, REPLICAS, 0)
        _append(leader, b"a")
        _append(leader, b"b")  # epoch 0: offsets 0-1
        # Broker 2 follows and has both; then it led epoch 1 and wrote "x" and
        # "y" nobody replicated, while broker 1 was elected in epoch 2.
        follower = _partition(tmp_path, 2)
        follower.update_state(1, 0, REPLICAS, REPLICAS, 0)
        records, diverging = _follower_fetch(leader, 2, 0)
        assert diverging is None
        follower.append_as_follower(memoryview(records), 2, 0)
        assert follower.log_end_offset == 2 and follower.high_watermark == 2
        follower.update_state(2, 1, REPLICAS, REPLICAS, 1)
        _append(follower, b"x")
        _append(follower, b"y")
        assert follower.last_fetched_epoch == 1
        leader.update_state(1, 2, REPLICAS, REPLICAS, 2)
        _append(leader, b"c")  # epoch 2 starts at offset 2
        follower.update_state(1, 2, REPLICAS, REPLICAS, 2)
        # The leader has no epoch 1: its largest below is 0, ending at 2.
        records, diverging = _follower_fetch(leader, 2, 4, last_epoch=1)
        assert (records, diverging) == (b"", (0, 2))
        local_epoch, local_end = follower.end_offset_for_epoch_local(0)
        assert (local_epoch, local_end) == (0, 2)
        follower.truncate_to(min(2, local_end))
        assert follower.log_end_offset == 2 and follower.last_fetched_epoch == 0
        records, diverging = _follower_fetch(leader, 2, 2, last_epoch=0)
        assert diverging is None
        follower.append_as_follower(memoryview(records), leader.high_watermark, 0)
        assert follower.log_end_offset == 3 and follower.last_fetched_epoch == 2
        # The follower's next fetch (at its end) moves the leader's HW there.
        _follower_fetch(leader, 2, 3, last_epoch=2)
        _follower_fetch(leader, 3, 3)
        assert leader.high_watermark == 3
    loop.run_until_complete(run())


def test_a_single_replica_leader_commits_on_append(tmp_path: Path,
                                                    loop: asyncio.AbstractEventLoop) -> None:
    async def run() -> None:
        leader = _partition(tmp_path, 1, min_isr=1)
        leader.update_state(1, 0, (1,), (1,), 0)
        end = _append(leader, b"a")
        assert not leader.replicated and leader.high_watermark == end
        assert leader.replicated_to_isr(end) is None
        with pytest.raises(NotLeaderOrFollowerError):  # no followers to fetch
            _follower_fetch(leader, 2, 0)
    loop.run_until_complete(run())
