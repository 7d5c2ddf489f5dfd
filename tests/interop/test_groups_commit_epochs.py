"""Which offset commits a consumer group (KIP-848) accepts, and with which error code,
asked with raw requests of both a strom broker and Apache Kafka 4.4 (the reference
broker of tests/interop/_kafka_reference.py): the same expectations hold for both,
so a test fails whenever strom answers otherwise than Kafka.

Kafka 4.4's rule (ConsumerGroup.validateOffsetCommit and its CommitPartitionValidator,
KIP-1251 assignment epochs): the member's own epoch is accepted; a newer one is
STALE_MEMBER_EPOCH (ILLEGAL_GENERATION for a classic member); an older one is accepted
for partitions the member has held since that epoch (assigned, or being revoked, at
that epoch or before), and refused for the whole request if one partition is not
(a zombie's commit of a partition that moved). OffsetCommit below v9 is refused to
consumer-protocol members only; TxnOffsetCommit below v6 turns STALE_MEMBER_EPOCH
into ILLEGAL_GENERATION and accepts a commit that names no member at all.

A classic member (JoinGroup/SyncGroup/Heartbeat in a consumer group) is driven as
an eager consumer: it rejoins without partitions when told to rebalance.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strom.coordinator.group.service import partition_for
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.testing import EmbeddedBroker
from tests.broker.raw_client import RawClient

from . import _kafka_reference
from .clients import run_kafka_tool, wait_until

pytestmark = pytest.mark.interop

PARTITIONS = 6
TIMEOUT = 60
RETRIABLE = (ErrorCode.coordinator_load_in_progress, ErrorCode.coordinator_not_available,
             ErrorCode.not_coordinator)

NONE = ErrorCode.none
ILLEGAL_GENERATION = ErrorCode.illegal_generation
UNKNOWN_MEMBER_ID = ErrorCode.unknown_member_id
UNSUPPORTED_VERSION = ErrorCode.unsupported_version
STALE_MEMBER_EPOCH = ErrorCode.stale_member_epoch


STROM_OVERRIDES = {"offsets.topic.num.partitions": "4", "group.initial.rebalance.delay.ms": "0",
                   "num.partitions": "1", "auto.create.topics.enable": "true"}


@pytest.fixture(scope="module", params=["strom", "kafka"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[str]:
    """The bootstrap of a single-node broker: strom, or Apache Kafka (skipped without
    java and Kafka's jars). Kafka assigns at once, as strom does (its default waits
    for group.consumer.assignment.interval.ms between target assignments)."""
    if request.param == "strom":
        with EmbeddedBroker(tmp_path_factory.mktemp("strom"),
                            overrides=STROM_OVERRIDES) as broker:
            yield broker.bootstrap
        return
    request.getfixturevalue("java_tools")
    ref = _kafka_reference.start(tmp_path_factory.mktemp("kafka"),
                                 extra={"group.consumer.assignment.interval.ms": "0"})
    try:
        yield ref.bootstrap
    finally:
        ref.stop()


# -- the broker --------------------------------------------------------------------------

def _create_topic(client: RawClient, topic: str) -> uuid.UUID:
    created = client.send(ApiKey.CREATE_TOPICS, 5, {
        "topics": [{"name": topic, "num_partitions": PARTITIONS, "replication_factor": -1,
                    "assignments": [], "configs": []}],
        "timeout": datetime.timedelta(seconds=30), "validate_only": False})
    assert created.topics[0].error_code == NONE, created

    def known() -> uuid.UUID | None:
        metadata = client.send(ApiKey.METADATA, 12, {
            "topics": [{"name": topic, "topic_id": None}], "allow_auto_topic_creation": False,
            "include_topic_authorized_operations": False})
        found = metadata.topics[0]
        if found.error_code != NONE or len(found.partitions) != PARTITIONS:
            return None
        return uuid.UUID(str(found.topic_id))

    topic_id: uuid.UUID = wait_until(known, TIMEOUT, what=f"topic {topic}")
    return topic_id


def _wait_coordinator(client: RawClient, key: str, key_type: int) -> None:
    def found() -> bool:
        answer = client.send(ApiKey.FIND_COORDINATOR, 4, {
            "key_type": key_type, "coordinator_keys": [key]}).coordinators[0]
        return bool(answer.error_code == NONE)

    wait_until(found, TIMEOUT, what=f"the coordinator of {key}")


class Setup:
    """A fresh topic of PARTITIONS partitions and a group id, on one connection."""

    def __init__(self, client: RawClient) -> None:
        suffix = uuid.uuid4().hex[:10]
        self.client = client
        self.topic = f"commit-epochs-{suffix}"
        self.group = f"g-{suffix}"
        self.topic_id = _create_topic(client, self.topic)
        _wait_coordinator(client, self.group, 0)


# -- members -----------------------------------------------------------------------------

class ConsumerMember:
    """A KIP-848 member: ConsumerGroupHeartbeat v1. It gives up a revoked partition at
    once (its next heartbeat no longer reports it)."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.member_id = str(uuid.uuid4())
        self.epoch = 0
        self.owned: set[int] = set()

    def heartbeat(self) -> bool:
        s = self.setup
        owned = ([{"topic_id": s.topic_id, "partitions": sorted(self.owned)}]
                 if self.owned else [])
        response = s.client.send(ApiKey.CONSUMER_GROUP_HEARTBEAT, 1, {
            "group_id": s.group, "member_id": self.member_id, "member_epoch": self.epoch,
            "instance_id": None, "rack_id": None, "rebalance_timeout": 30_000,
            "subscribed_topic_names": [s.topic], "subscribed_topic_regex": None,
            "server_assignor": None, "topic_partitions": owned})
        if response.error_code in RETRIABLE:
            return False
        assert response.error_code == NONE, response
        self.epoch = int(response.member_epoch)
        if response.assignment is not None:
            self.owned = {int(p) for t in response.assignment.topic_partitions
                          if t.topic_id == s.topic_id for p in t.partitions}
        return True


def _subscription_v0(topic: str) -> bytes:
    """ConsumerProtocolSubscription v0 of one topic: it reports no owned partitions."""
    raw = topic.encode()
    return (b"\x00\x00" + (1).to_bytes(4, "big") + len(raw).to_bytes(2, "big") + raw
            + (-1).to_bytes(4, "big", signed=True))


def _assigned(data: bytes, topic: str) -> set[int]:
    """The partitions of `topic` in a ConsumerProtocolAssignment."""
    out: set[int] = set()
    pos = 6
    for _ in range(int.from_bytes(data[2:6], "big") if data else 0):
        size = int.from_bytes(data[pos:pos + 2], "big")
        name = data[pos + 2:pos + 2 + size].decode()
        pos += 2 + size
        count = int.from_bytes(data[pos:pos + 4], "big")
        pos += 4
        for _p in range(count):
            if name == topic:
                out.add(int.from_bytes(data[pos:pos + 4], "big", signed=True))
            pos += 4
    return out


class ClassicMember:
    """A classic consumer in the consumer group (JoinGroup v9, SyncGroup v5, Heartbeat v4),
    eager: it rejoins with no partitions when a rebalance is in progress."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.member_id = ""
        self.generation = -1
        self.assigned: set[int] = set()

    def join_and_sync(self) -> None:
        s = self.setup
        for _ in range(2):  # KIP-394: the first JoinGroup only hands out the member id
            joined = s.client.send(ApiKey.JOIN_GROUP, 9, {
                "group_id": s.group, "session_timeout": 30_000, "rebalance_timeout": 30_000,
                "member_id": self.member_id, "group_instance_id": None,
                "protocol_type": "consumer", "reason": None,
                "protocols": [{"name": "range", "metadata": _subscription_v0(s.topic)}]})
            self.member_id = joined.member_id
            if joined.error_code != ErrorCode.member_id_required:
                break
        assert joined.error_code == NONE, joined
        self.generation = int(joined.generation_id)
        self.assigned = set()  # eager: nothing is owned across a rebalance
        synced = s.client.send(ApiKey.SYNC_GROUP, 5, {
            "group_id": s.group, "generation_id": self.generation,
            "member_id": self.member_id, "group_instance_id": None,
            "protocol_type": "consumer", "protocol_name": "range", "assignments": []})
        if synced.error_code == ErrorCode.rebalance_in_progress:
            return
        assert synced.error_code == NONE, synced
        self.assigned = _assigned(synced.assignment, s.topic)

    def beat(self) -> int:
        s = self.setup
        return int(s.client.send(ApiKey.HEARTBEAT, 4, {
            "group_id": s.group, "generation_id": self.generation,
            "member_id": self.member_id, "group_instance_id": None}).error_code)

    def heartbeat(self) -> bool:
        """One heartbeat, rejoining when told to; whether it was answered NONE."""
        code = self.beat()
        if code == ErrorCode.rebalance_in_progress:
            self.join_and_sync()
            return False
        assert code == NONE, code
        return True


# -- requests ----------------------------------------------------------------------------

def commit(setup: Setup, member_id: str, epoch: int, partitions: set[int],
           version: int = 9) -> list[int]:
    """OffsetCommit; the error code of each partition, in partition order."""
    response = setup.client.send(ApiKey.OFFSET_COMMIT, version, {
        "group_id": setup.group, "generation_id_or_member_epoch": epoch,
        "member_id": member_id, "group_instance_id": None, "retention_time": -1,
        "topics": [{"name": setup.topic, "partitions": [
            {"partition_index": p, "committed_offset": 1, "committed_leader_epoch": -1,
             "committed_metadata": None} for p in sorted(partitions)]}]})
    return [int(p.error_code) for t in response.topics for p in t.partitions]


def fetch(setup: Setup, member_id: str, epoch: int) -> int:
    """OffsetFetch v9 with a member id and epoch; the group's error code."""
    response = setup.client.send(ApiKey.OFFSET_FETCH, 9, {
        "groups": [{"group_id": setup.group, "member_id": member_id, "member_epoch": epoch,
                    "topics": [{"name": setup.topic, "partition_indexes": [0]}]}],
        "require_stable": False})
    return int(response.groups[0].error_code)


class Transaction:
    """A transaction of a fresh transactional id with the group's offsets added
    (InitProducerId v4, AddOffsetsToTxn v3), for TxnOffsetCommit v3."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.transactional_id = f"tx-{uuid.uuid4().hex[:10]}"
        client = setup.client
        _wait_coordinator(client, self.transactional_id, 1)

        def init() -> Any:
            response = client.send(ApiKey.INIT_PRODUCER_ID, 4, {
                "transactional_id": self.transactional_id,
                "transaction_timeout": datetime.timedelta(seconds=60),
                "producer_id": -1, "producer_epoch": -1})
            if response.error_code in RETRIABLE:
                return None
            assert response.error_code == NONE, response
            return response

        initialized = wait_until(init, TIMEOUT, what="a producer id")
        self.producer_id = int(initialized.producer_id)
        self.producer_epoch = int(initialized.producer_epoch)

        def add() -> bool:
            code = client.send(ApiKey.ADD_OFFSETS_TO_TXN, 3, {
                "transactional_id": self.transactional_id, "producer_id": self.producer_id,
                "producer_epoch": self.producer_epoch, "group_id": setup.group}).error_code
            if code in (*RETRIABLE, ErrorCode.concurrent_transactions):
                return False
            assert code == NONE, code
            return True

        wait_until(add, TIMEOUT, what="the group's offsets in the transaction")

    def commit(self, member_id: str, generation: int, partitions: set[int]) -> list[int]:
        s = self.setup
        response = s.client.send(ApiKey.TXN_OFFSET_COMMIT, 3, {
            "transactional_id": self.transactional_id, "group_id": s.group,
            "producer_id": self.producer_id, "producer_epoch": self.producer_epoch,
            "generation_id": generation, "member_id": member_id, "group_instance_id": None,
            "topics": [{"name": s.topic, "partitions": [
                {"partition_index": p, "committed_offset": 1, "committed_leader_epoch": -1,
                 "committed_metadata": None} for p in sorted(partitions)]}]})
        return [int(p.error_code) for t in response.topics for p in t.partitions]

    def abort(self) -> None:
        response = self.setup.client.send(ApiKey.END_TXN, 3, {
            "transactional_id": self.transactional_id, "producer_id": self.producer_id,
            "producer_epoch": self.producer_epoch, "committed": False})
        assert response.error_code == NONE, response


def _settle(*steps: Any, until: Any, what: str) -> None:
    """Heartbeat every member in turn until `until()` holds."""
    def step() -> bool:
        for beat in steps:
            beat()
        return bool(until())

    wait_until(step, TIMEOUT, what=what)


def each(code: int, partitions: set[int]) -> list[int]:
    """One partition-level code per partition of a commit."""
    return [code] * len(partitions)


# -- the tests ---------------------------------------------------------------------------


def test_consumer_protocol_member_commits(target: str) -> None:
    with RawClient(target, timeout=30) as client:
        s = Setup(client)
        everything = set(range(PARTITIONS))
        a = ConsumerMember(s)
        _settle(a.heartbeat, until=lambda: a.owned == everything, what="a owning everything")
        first_epoch = a.epoch
        b = ConsumerMember(s)
        _settle(a.heartbeat, b.heartbeat,
                until=lambda: (a.owned and b.owned and a.owned | b.owned == everything
                               and not a.owned & b.owned and a.epoch == b.epoch),
                what="a and b sharing the partitions at one epoch")
        kept, moved = set(a.owned), set(b.owned)  # a has held `kept` since first_epoch
        assert a.epoch > first_epoch
        one_moved = {min(moved)}

        got: dict[str, Any] = {
            "current epoch": commit(s, a.member_id, a.epoch, kept),
            "older epoch, partitions held since": commit(s, a.member_id, first_epoch, kept),
            "older epoch, a partition that moved": commit(s, a.member_id, first_epoch,
                                                          one_moved),
            "older epoch, held and moved together": commit(s, a.member_id, first_epoch,
                                                           kept | one_moved),
            "older than the partitions' assignment epoch": commit(s, b.member_id, b.epoch - 1,
                                                                  moved),
            "newer epoch": commit(s, a.member_id, a.epoch + 1, kept),
            "epoch -1 with a member id": commit(s, a.member_id, -1, kept),
            "unknown member": commit(s, "ghost", a.epoch, kept),
            "no member id, generation -1": commit(s, "", -1, kept),
            "OffsetCommit v8": commit(s, a.member_id, a.epoch, kept, version=8),
            "OffsetFetch, current epoch": fetch(s, a.member_id, a.epoch),
            "OffsetFetch, older epoch": fetch(s, a.member_id, first_epoch),
            "OffsetFetch, newer epoch": fetch(s, a.member_id, a.epoch + 1),
        }
        txn = Transaction(s)
        got.update({
            "TxnOffsetCommit v3, current epoch": txn.commit(a.member_id, a.epoch, kept),
            "TxnOffsetCommit v3, older epoch, held since": txn.commit(a.member_id, first_epoch,
                                                                      kept),
            "TxnOffsetCommit v3, older epoch, moved": txn.commit(a.member_id, first_epoch,
                                                                 one_moved),
            "TxnOffsetCommit v3, newer epoch": txn.commit(a.member_id, a.epoch + 1, kept),
            "TxnOffsetCommit v3, no member": txn.commit("", -1, kept),
            "TxnOffsetCommit v3, unknown member": txn.commit("ghost", a.epoch, kept),
        })
        txn.abort()

    assert got == {
        "current epoch": each(NONE, kept),
        "older epoch, partitions held since": each(NONE, kept),
        "older epoch, a partition that moved": [STALE_MEMBER_EPOCH],
        "older epoch, held and moved together": each(STALE_MEMBER_EPOCH, kept | one_moved),
        "older than the partitions' assignment epoch": each(STALE_MEMBER_EPOCH, moved),
        "newer epoch": each(STALE_MEMBER_EPOCH, kept),
        "epoch -1 with a member id": each(STALE_MEMBER_EPOCH, kept),
        "unknown member": each(UNKNOWN_MEMBER_ID, kept),
        "no member id, generation -1": each(UNKNOWN_MEMBER_ID, kept),
        "OffsetCommit v8": each(UNSUPPORTED_VERSION, kept),
        "OffsetFetch, current epoch": NONE,
        "OffsetFetch, older epoch": STALE_MEMBER_EPOCH,
        "OffsetFetch, newer epoch": STALE_MEMBER_EPOCH,
        "TxnOffsetCommit v3, current epoch": each(NONE, kept),
        "TxnOffsetCommit v3, older epoch, held since": each(NONE, kept),
        "TxnOffsetCommit v3, older epoch, moved": [ILLEGAL_GENERATION],
        "TxnOffsetCommit v3, newer epoch": each(ILLEGAL_GENERATION, kept),
        "TxnOffsetCommit v3, no member": each(NONE, kept),
        "TxnOffsetCommit v3, unknown member": each(UNKNOWN_MEMBER_ID, kept),
    }


def test_classic_member_commits(target: str) -> None:
    with RawClient(target, timeout=30) as client:
        s = Setup(client)
        everything = set(range(PARTITIONS))
        a = ConsumerMember(s)
        _settle(a.heartbeat, until=lambda: a.owned == everything, what="a owning everything")
        c = ClassicMember(s)
        c.join_and_sync()
        _settle(a.heartbeat, c.heartbeat,
                until=lambda: (a.owned and c.assigned and a.owned | c.assigned == everything
                               and not a.owned & c.assigned and c.beat() == NONE),
                what="a and the classic member sharing the partitions")
        held, old_generation = set(c.assigned), c.generation

        # A third member joins: the classic member learns of the rebalance from its
        # heartbeat and commits what it holds with its generation before rejoining
        # (a consumer's onPartitionsRevoked), then rejoins without partitions.
        b = ConsumerMember(s)
        assert b.heartbeat()
        assert c.beat() == ErrorCode.rebalance_in_progress
        got: dict[str, Any] = {
            "revoking, its generation": commit(s, c.member_id, c.generation, held),
        }
        c.join_and_sync()
        _settle(a.heartbeat, b.heartbeat, c.heartbeat,
                until=lambda: (a.owned and b.owned and c.assigned
                               and a.owned | b.owned | c.assigned == everything
                               and len(a.owned) + len(b.owned) + len(c.assigned) == PARTITIONS
                               and c.beat() == NONE),
                what="three members sharing the partitions")
        kept = held & c.assigned  # the classic member has held these since old_generation
        gone = held - c.assigned
        assert kept and gone and c.generation > old_generation, (held, c.assigned)
        one_gone = {min(gone)}
        got.update({
            "current generation": commit(s, c.member_id, c.generation, kept),
            "previous generation, partitions held since": commit(s, c.member_id,
                                                                 old_generation, kept),
            "previous generation, a partition given up": commit(s, c.member_id,
                                                                old_generation, one_gone),
            "previous generation, held and given up together": commit(
                s, c.member_id, old_generation, kept | one_gone),
            "newer generation": commit(s, c.member_id, c.generation + 1, kept),
            "generation -1 with its member id": commit(s, c.member_id, -1, kept),
            "unknown member": commit(s, "ghost", c.generation, kept),
            "OffsetCommit v7, current generation": commit(s, c.member_id, c.generation, kept,
                                                          version=7),
            "OffsetCommit v7, previous generation, held since": commit(
                s, c.member_id, old_generation, kept, version=7),
            "OffsetCommit v7, previous generation, given up": commit(
                s, c.member_id, old_generation, one_gone, version=7),
            "OffsetFetch, current generation": fetch(s, c.member_id, c.generation),
            "OffsetFetch, previous generation": fetch(s, c.member_id, old_generation),
        })
        txn = Transaction(s)
        got.update({
            "TxnOffsetCommit v3, previous generation, held since": txn.commit(
                c.member_id, old_generation, kept),
            "TxnOffsetCommit v3, previous generation, given up": txn.commit(
                c.member_id, old_generation, one_gone),
            "TxnOffsetCommit v3, newer generation": txn.commit(c.member_id,
                                                               c.generation + 1, kept),
        })
        txn.abort()

    assert got == {
        "revoking, its generation": each(NONE, held),
        "current generation": each(NONE, kept),
        "previous generation, partitions held since": each(NONE, kept),
        "previous generation, a partition given up": [ILLEGAL_GENERATION],
        "previous generation, held and given up together": each(ILLEGAL_GENERATION,
                                                                kept | one_gone),
        "newer generation": each(ILLEGAL_GENERATION, kept),
        "generation -1 with its member id": each(ILLEGAL_GENERATION, kept),
        "unknown member": each(UNKNOWN_MEMBER_ID, kept),
        "OffsetCommit v7, current generation": each(NONE, kept),
        "OffsetCommit v7, previous generation, held since": each(NONE, kept),
        "OffsetCommit v7, previous generation, given up": [ILLEGAL_GENERATION],
        "OffsetFetch, current generation": NONE,
        "OffsetFetch, previous generation": ILLEGAL_GENERATION,
        "TxnOffsetCommit v3, previous generation, held since": each(NONE, kept),
        "TxnOffsetCommit v3, previous generation, given up": [ILLEGAL_GENERATION],
        "TxnOffsetCommit v3, newer generation": each(ILLEGAL_GENERATION, kept),
    }


def test_kafka_reads_the_assignment_epochs_strom_writes(tmp_path: Path, java_tools: Any
                                                        ) -> None:
    """kafka-dump-log --offsets-decoder reads the epochs strom records for each
    partition of a member's current assignment (ConsumerGroupCurrentMemberAssignment
    record, tagged field AssignmentEpochs)."""
    with EmbeddedBroker(tmp_path / "data", overrides=STROM_OVERRIDES) as broker, \
            RawClient(broker.bootstrap, timeout=30) as client:
        s = Setup(client)
        a = ConsumerMember(s)
        _settle(a.heartbeat, until=lambda: len(a.owned) == PARTITIONS,
                what="a owning everything")
        first_epoch = a.epoch
        b = ConsumerMember(s)
        _settle(a.heartbeat, b.heartbeat,
                until=lambda: (a.owned and b.owned and a.epoch == b.epoch
                               and len(a.owned) + len(b.owned) == PARTITIONS),
                what="a and b sharing the partitions at one epoch")
        segment = (broker.data_dir / f"__consumer_offsets-{partition_for(s.group, 4)}"
                   / "00000000000000000000.log")
    out = run_kafka_tool("org.apache.kafka.tools.DumpLogSegments", "--offsets-decoder",
                         "--print-data-log", "--files", str(segment)).stdout
    latest: dict[str, Any] = {}
    for line in out.splitlines():
        if '"type":"8"' in line and f'"groupId":"{s.group}"' in line:
            key = json.loads(line[line.index("key: ") + 5:line.index(" payload: ")])
            latest[key["data"]["memberId"]] = json.loads(
                line[line.index(" payload: ") + 10:])["data"]
    assert {member: [(t["partitions"], t["assignmentEpochs"])
                     for t in latest[member]["assignedPartitions"]]
            for member in (a.member_id, b.member_id)} == {
        a.member_id: [(sorted(a.owned), [first_epoch] * len(a.owned))],
        b.member_id: [(sorted(b.owned), [b.epoch] * len(b.owned))]}
