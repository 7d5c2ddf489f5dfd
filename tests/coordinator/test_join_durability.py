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
A member's leave, the Heartbeat that tells the others and their rejoin write
nothing, so none of them waits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
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


def _sync(client: WireClient, generation: int, member_id: str,
          assignments: list[dict[str, Any]]) -> Any:
    return call(client, ApiKey.SYNC_GROUP, 3, {
        "group_id": "held", "generation_id": generation, "member_id": member_id,
        "group_instance_id": None, "assignments": assignments})


def _heartbeat(client: WireClient, generation: int, member_id: str) -> Any:
    return call(client, ApiKey.HEARTBEAT, 3, {"group_id": "held", "generation_id": generation,
                                              "member_id": member_id, "group_instance_id": None})


def _wait_for_state(client: WireClient, state: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        described = call(client, ApiKey.DESCRIBE_GROUPS, 0, {"groups": ["held"]})
        if described.groups[0].group_state == state:
            return
        assert time.monotonic() < deadline, f"group still {described.groups[0].group_state}"


def test_leave_and_the_rejoin_it_starts_are_answered_before_any_fsync(
        broker: EmbeddedBroker) -> None:
    """The steps of a member leaving a stable group (the group50 row's leave), none
    of which writes a record Kafka would wait for: the LeaveGroup, the others'
    Heartbeat that tells them of the rebalance, and their rejoin, which completes
    the generation as soon as every remaining member is in."""
    rebalance_in_progress = 27
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    with WireClient(broker.bootstrap, timeout=10) as a, WireClient(broker.bootstrap,
                                                                   timeout=10) as b:
        assert call(a, ApiKey.FIND_COORDINATOR, 3, {"key": "held", "key_type": 0}).error_code == 0
        broker.run(broker.services.groups.runtime.wait_loaded())
        # a alone is generation 1; b joining makes generation 2 once a rejoins.
        id_a = _join(a, "").member_id
        assert _join(a, id_a).generation_id == 1
        assert _sync(a, 1, id_a, [{"member_id": id_a, "assignment": b"a"}]).error_code == 0
        id_b = _join(b, "").member_id
        parked_b = pool.submit(_join, b, id_b)
        _wait_for_state(a, "PreparingRebalance")  # b's join has arrived
        assert _heartbeat(a, 1, id_a).error_code == rebalance_in_progress
        assert (_join(a, id_a).generation_id, parked_b.result(timeout=10).generation_id) == (2, 2)
        synced_b = pool.submit(_sync, b, 2, id_b, [])
        assert _sync(a, 2, id_a, [{"member_id": id_a, "assignment": b"a"},
                                  {"member_id": id_b, "assignment": b"b"}]).error_code == 0
        assert synced_b.result(timeout=10).assignment == b"b"

        _hold_offsets_fsync(broker)  # never released: each answer below comes without it
        left = call(b, ApiKey.LEAVE_GROUP, 1, {"group_id": "held", "member_id": id_b})
        assert left.error_code == 0
        assert _heartbeat(a, 2, id_a).error_code == rebalance_in_progress
        rejoined = _join(a, id_a)
        assert (rejoined.error_code, rejoined.generation_id, rejoined.leader) == (0, 3, id_a)
    pool.shutdown()
