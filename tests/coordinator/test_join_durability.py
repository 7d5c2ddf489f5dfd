"""Which classic-group answers wait for the coordinator's records to be fsync'd
(issue 19, the group50 bench row), over the wire against an in-process broker.

Kafka's GroupCoordinatorService answers a JoinGroup with the future the group's
state machine completes, not with the future of the operation's write: the
first member of a new group gets MEMBER_ID_REQUIRED, and then its generation,
while the group's creation record is still being committed. strom used to hold
that first answer until the record was fsync'd (118-279 ms measured with 50
librdkafka members), which made the group's creator a straggler whose late
JoinGroup ended the first generation and cost the group another rebalance.
The leader's SyncGroup, whose assignment must survive a crash, still waits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator
from typing import Any

import pytest

from strom.protocol.api import ApiKey
from strom.testing import EmbeddedBroker
from tests.wire import WireClient, call

OFFSETS = "__consumer_offsets"
MEMBER_ID_REQUIRED = 79


@pytest.fixture
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    # A write that never becomes durable would fail after offsets.commit.timeout.ms:
    # a minute, far beyond the answers this test waits for.
    with EmbeddedBroker(tmp_path_factory.mktemp("join-durability"), overrides={
            "offsets.topic.num.partitions": "1", "group.initial.rebalance.delay.ms": "0",
            "offsets.commit.timeout.ms": "60000"}) as b:
        b.run(b.services.groups.runtime.wait_loaded())
        yield b


def _hold_offsets_fsync(broker: EmbeddedBroker) -> asyncio.Event:
    """From now on, nothing written to __consumer_offsets becomes durable until the
    returned event is set (on the broker's loop)."""
    services = broker.services
    flusher = services.replicas.flusher
    offsets_log = services.replicas.partitions[(OFFSETS, 0)].log
    original = flusher.wait_durable

    async def make_gate() -> asyncio.Event:
        return asyncio.Event()

    gate: asyncio.Event = broker.run(make_gate())

    async def held(log: Any, end_offset: int) -> None:
        if log is offsets_log:
            await gate.wait()
        return await original(log, end_offset)

    flusher.wait_durable = held
    return gate


def _join(client: WireClient, member_id: str) -> Any:
    return call(client, ApiKey.JOIN_GROUP, 5, {
        "group_id": "held", "session_timeout": 10_000, "rebalance_timeout": 10_000,
        "member_id": member_id, "group_instance_id": None, "protocol_type": "consumer",
        "protocols": [{"name": "range", "metadata": b""}]})


def test_join_is_answered_before_the_group_record_is_durable_sync_is_not(
        broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap, timeout=10) as client:
        # Creates __consumer_offsets, as a client's first FindCoordinator does.
        found = call(client, ApiKey.FIND_COORDINATOR, 3, {"key": "held", "key_type": 0})
        assert found.error_code == 0
        broker.run(broker.services.groups.runtime.wait_loaded())
        gate = _hold_offsets_fsync(broker)
        # The first JoinGroup creates the group (a GroupMetadata record, held here).
        first = _join(client, "")
        assert first.error_code == MEMBER_ID_REQUIRED and first.member_id
        assert broker.records(OFFSETS), "the group's creation record was written"
        joined = _join(client, first.member_id)
        assert (joined.error_code, joined.generation_id, joined.leader) == (
            0, 1, first.member_id)

        # The leader's assignment is answered only once its record is durable.
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        sync = pool.submit(call, client, ApiKey.SYNC_GROUP, 3, {
            "group_id": "held", "generation_id": 1, "member_id": first.member_id,
            "group_instance_id": None,
            "assignments": [{"member_id": first.member_id, "assignment": b"mine"}]})
        pool.shutdown(wait=False)
        with pytest.raises(concurrent.futures.TimeoutError):
            sync.result(timeout=0.5)

        async def release() -> None:
            gate.set()

        broker.run(release())
        synced = sync.result(timeout=10)
        assert (synced.error_code, synced.assignment) == (0, b"mine")
