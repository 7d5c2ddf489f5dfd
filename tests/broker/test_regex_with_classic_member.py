"""KIP-848 regex subscriptions beside a classic member, at the wire level.

A consumer-protocol member subscribes with SubscribedTopicRegex (RE2/J syntax,
resolved by the coordinator); a classic client has no regex field: it resolves
its pattern itself and lists the topic names in its JoinGroup metadata, which
is how Kafka 4.x takes classic members into a consumer group. Both end up with
disjoint shares of the matching topics' partitions, and a topic that matches
only part-way (the regex must match the whole name) is never assigned."""

from __future__ import annotations

import time
import uuid
from typing import Any

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.testing import EmbeddedBroker
from tests.broker.admin_helpers import create
from tests.broker.raw_client import RawClient

Partitions = set[tuple[str, int]]


def _subscription_v0(topics: list[str]) -> bytes:
    """ConsumerProtocolSubscription v0: version, [topic], user_data (null)."""
    out = (0).to_bytes(2, "big") + len(topics).to_bytes(4, "big")
    for topic in topics:
        out += len(topic).to_bytes(2, "big") + topic.encode()
    return out + (-1).to_bytes(4, "big", signed=True)


def _assigned(data: bytes) -> Partitions:
    """(topic, partition) pairs of a ConsumerProtocolAssignment (every version
    starts with version, [topic, [partition]])."""
    out: Partitions = set()
    if not data:
        return out
    pos = 6
    for _ in range(int.from_bytes(data[2:6], "big")):
        size = int.from_bytes(data[pos:pos + 2], "big")
        topic = data[pos + 2:pos + 2 + size].decode()
        pos += 2 + size
        count = int.from_bytes(data[pos:pos + 4], "big")
        pos += 4
        for _p in range(count):
            out.add((topic, int.from_bytes(data[pos:pos + 4], "big", signed=True)))
            pos += 4
    return out


class _Classic:
    """A classic consumer (JoinGroup v9, SyncGroup v5, Heartbeat v4) driven step by step."""

    def __init__(self, client: RawClient, group: str, topics: list[str]) -> None:
        self.client, self.group, self.topics = client, group, topics
        self.member_id, self.generation = "", -1
        self.assigned: Partitions = set()

    def join_and_sync(self) -> None:
        for _ in range(2):  # KIP-394: the first JoinGroup only hands out the member id
            joined = self.client.send(ApiKey.JOIN_GROUP, 9, {
                "group_id": self.group, "session_timeout": 30_000, "rebalance_timeout": 30_000,
                "member_id": self.member_id, "group_instance_id": None,
                "protocol_type": "consumer", "reason": None,
                "protocols": [{"name": "range", "metadata": _subscription_v0(self.topics)}]})
            self.member_id = joined.member_id
            if joined.error_code != ErrorCode.member_id_required:
                break
        assert joined.error_code == ErrorCode.none, joined
        assert joined.protocol_type == "consumer" and joined.protocol_name == "range"
        self.generation = joined.generation_id
        synced = self.client.send(ApiKey.SYNC_GROUP, 5, {
            "group_id": self.group, "generation_id": self.generation,
            "member_id": self.member_id, "group_instance_id": None,
            "protocol_type": "consumer", "protocol_name": "range", "assignments": []})
        if synced.error_code == ErrorCode.rebalance_in_progress:
            return
        assert synced.error_code == ErrorCode.none, synced
        self.assigned = _assigned(synced.assignment)

    def heartbeat(self) -> None:
        beat = self.client.send(ApiKey.HEARTBEAT, 4, {
            "group_id": self.group, "generation_id": self.generation,
            "member_id": self.member_id, "group_instance_id": None})
        if beat.error_code == ErrorCode.rebalance_in_progress:
            self.join_and_sync()
        else:
            assert beat.error_code == ErrorCode.none, beat


def test_regex_member_and_classic_member_share_the_matching_topics(
        broker: EmbeddedBroker) -> None:
    prefix = f"rxc{time.monotonic_ns()}"
    matching = [f"{prefix}-a", f"{prefix}-b"]
    for name in (*matching, f"x{prefix}-a"):
        create(broker, name, partitions=2)
    all_partitions = {(t, p) for t in matching for p in range(2)}
    names = {t.topic_id: t.name for t in broker.services.image.topics.values()}
    group, member = f"g-{prefix}", str(uuid.uuid4())
    with RawClient(broker.bootstrap) as client:
        deadline = time.monotonic() + 15
        while client.send(ApiKey.FIND_COORDINATOR, 4, {
                "key_type": 0, "coordinator_keys": [group]}).coordinators[0].error_code:
            assert time.monotonic() < deadline, "no group coordinator"
            time.sleep(0.05)
        epoch, owned = 0, []
        regex_assigned: Partitions = set()

        def consumer_heartbeat() -> None:
            nonlocal epoch, owned, regex_assigned
            response: Any = client.send(ApiKey.CONSUMER_GROUP_HEARTBEAT, 1, {
                "group_id": group, "member_id": member, "member_epoch": epoch,
                "instance_id": None, "rack_id": None, "rebalance_timeout": 30_000,
                "subscribed_topic_names": None,
                "subscribed_topic_regex": f"^{prefix}-.*", "server_assignor": None,
                "topic_partitions": owned})
            assert response.error_code == ErrorCode.none, response
            epoch = response.member_epoch
            if response.assignment is not None:
                owned = [{"topic_id": t.topic_id, "partitions": list(t.partitions)}
                         for t in response.assignment.topic_partitions]
                regex_assigned = {(names[t.topic_id], p)
                                  for t in response.assignment.topic_partitions
                                  for p in t.partitions}

        while regex_assigned != all_partitions:  # the regex resolves after a heartbeat
            consumer_heartbeat()
            assert time.monotonic() < deadline, regex_assigned
            time.sleep(0.05)

        classic = _Classic(client, group, matching)  # the client resolved the pattern
        classic.join_and_sync()
        deadline = time.monotonic() + 20
        while not (classic.assigned and regex_assigned
                   and classic.assigned | regex_assigned == all_partitions):
            assert time.monotonic() < deadline, (classic.assigned, regex_assigned)
            consumer_heartbeat()  # gives up what the classic member is to get
            classic.heartbeat()  # rejoins when told to, and syncs its new share
            time.sleep(0.05)
        assert not classic.assigned & regex_assigned
        described = client.send(ApiKey.CONSUMER_GROUP_DESCRIBE, 0, {
            "group_ids": [group], "include_authorized_operations": False}).groups[0]
        assert described.error_code == ErrorCode.none
        by_id = {m.member_id: m for m in described.members}
        assert by_id[member].subscribed_topic_regex == f"^{prefix}-.*"
        assert sorted(by_id[classic.member_id].subscribed_topic_names) == matching
