"""Streams groups (KIP-1071) at the protocol level: StreamsGroupHeartbeat and
StreamsGroupDescribe against an in-process broker, as Kafka Streams speaks them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from strom.protocol.api import ApiKey
from strom.testing import EmbeddedBroker
from tests.wire import WireClient, call

NONE = 0
UNKNOWN_MEMBER_ID = 25
INVALID_REQUEST = 42
GROUP_ID_NOT_FOUND = 69
FENCED_MEMBER_EPOCH = 110
STREAMS_INVALID_TOPOLOGY = 130
INCONSISTENT_GROUP_PROTOCOL = 23
MISSING_SOURCE_TOPICS = 1
INCORRECTLY_PARTITIONED_TOPICS = 2
MISSING_INTERNAL_TOPICS = 3
SHUTDOWN_APPLICATION = 4
ASSIGNMENT_DELAYED = 5


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(tmp_path_factory.mktemp("wire-streams"), overrides={
            "offsets.topic.num.partitions": "2", "group.streams.num.standby.replicas": "1",
            "group.streams.heartbeat.interval.ms": "5000",
            "group.streams.initial.rebalance.delay.ms": "0"}) as b:
        b.run(b.services.groups.coordinator_for("any"))  # creates __consumer_offsets
        b.run(b.services.groups.runtime.wait_loaded())
        yield b


@pytest.fixture
def client(broker: EmbeddedBroker) -> Iterator[WireClient]:
    with WireClient(broker.bootstrap) as c:
        yield c


def create_topic(client: WireClient, name: str, partitions: int) -> None:
    response = call(client, ApiKey.CREATE_TOPICS, 7, {
        "topics": [{"name": name, "num_partitions": partitions, "replication_factor": 1,
                    "assignments": [], "configs": []}],
        "timeout": 10_000, "validate_only": False})
    assert response.topics[0].error_code == NONE


def topic_info(name: str, partitions: int = 0) -> dict[str, Any]:
    return {"name": name, "partitions": partitions, "replication_factor": 0,
            "topic_configs": [{"key": "cleanup.policy", "value": "compact"}]}


def word_count(app: str, source: str, epoch: int = 1) -> dict[str, Any]:
    """Kafka Streams' word count: split and re-key (subtopology 0), count (1)."""
    repartition = f"{app}-counts-repartition"
    return {"epoch": epoch, "subtopologies": [
        {"subtopology_id": "0", "source_topics": [source], "source_topic_regex": [],
         "state_changelog_topics": [], "repartition_sink_topics": [repartition],
         "repartition_source_topics": [], "copartition_groups": []},
        {"subtopology_id": "1", "source_topics": [], "source_topic_regex": [],
         "state_changelog_topics": [topic_info(f"{app}-counts-changelog")],
         "repartition_sink_topics": [],
         "repartition_source_topics": [{**topic_info(repartition), "topic_configs": []}],
         "copartition_groups": []},
    ]}


class Member:
    """A Kafka Streams consumer: heartbeats, and owns what it was assigned."""

    def __init__(self, client: WireClient, group: str, topology: dict[str, Any], *,
                 process: str | None = None, port: int = 8080) -> None:
        self.client = client
        self.group = group
        self.topology = topology
        self.member_id = str(uuid.uuid4())
        self.process = process or str(uuid.uuid4())
        self.port = port
        self.epoch = 0
        self.active: dict[str, list[int]] = {}
        self.standby: dict[str, list[int]] = {}
        self.endpoint_epoch = 0

    def heartbeat(self, **fields: Any) -> Any:
        joining = self.epoch == 0
        body = {
            "group_id": self.group, "member_id": self.member_id, "member_epoch": self.epoch,
            "endpoint_information_epoch": self.endpoint_epoch, "instance_id": None,
            "rack_id": None, "rebalance_timeout": 30_000 if joining else -1,
            "topology": self.topology if joining else None,
            "active_tasks": None if joining else _tasks(self.active),
            "standby_tasks": None if joining else _tasks(self.standby),
            "warmup_tasks": None if joining else [],
            "process_id": self.process if joining else None,
            "user_endpoint": {"host": "localhost", "port": self.port} if joining else None,
            "client_tags": [] if joining else None, "task_offsets": None,
            "task_end_offsets": None, "shutdown_application": False, **fields}
        response = call(self.client, ApiKey.STREAMS_GROUP_HEARTBEAT, 0, body)
        if response.error_code == NONE:
            self.epoch = response.member_epoch
            self.endpoint_epoch = response.endpoint_information_epoch
            if response.active_tasks is not None:
                self.active = {t.subtopology_id: list(t.partitions)
                               for t in response.active_tasks}
                self.standby = {t.subtopology_id: list(t.partitions)
                                for t in response.standby_tasks}
        return response

    def tasks(self) -> set[tuple[str, int]]:
        return {(s, p) for s, ps in self.active.items() for p in ps}


def _tasks(tasks: dict[str, list[int]]) -> list[dict[str, Any]]:
    return [{"subtopology_id": s, "partitions": ps} for s, ps in sorted(tasks.items())]


def statuses(response: Any) -> list[int]:
    return [s.status_code for s in response.status or ()]


def until_stable(members: list[Member], deadline_s: float = 10.0) -> None:
    deadline = time.monotonic() + deadline_s
    for _ in range(200):
        responses = [m.heartbeat() for m in members]
        assert all(r.error_code == NONE for r in responses), responses
        owned = [t for m in members for t in m.tasks()]
        if len({m.epoch for m in members}) == 1 and len(owned) == len(set(owned)) and all(
                not statuses(r) for r in responses) and owned:
            final = [m.heartbeat() for m in members]
            if all(r.active_tasks is None for r in final):
                return
        assert time.monotonic() < deadline, "the group did not settle"
    raise AssertionError("the group did not settle")


def describe(client: WireClient, group: str) -> Any:
    response = call(client, ApiKey.STREAMS_GROUP_DESCRIBE, 0,
                    {"group_ids": [group], "include_authorized_operations": False})
    return response.groups[0]


def test_missing_source_topic_then_internal_topics_created_then_tasks_split(
        client: WireClient, broker: EmbeddedBroker) -> None:
    topology = word_count("app1", "words1")
    a = Member(client, "app1", topology, port=1)
    first = a.heartbeat()
    assert first.error_code == NONE and first.member_epoch >= 1
    assert statuses(first) == [MISSING_SOURCE_TOPICS]
    assert first.active_tasks == ()  # no tasks until the topology is configured
    assert first.heartbeat_interval.total_seconds() == 5
    assert first.acceptable_recovery_lag == 10_000
    assert describe(client, "app1").group_state == "NotReady"

    create_topic(client, "words1", 4)
    second = a.heartbeat()
    # The coordinator names the missing internal topics; the broker creates them.
    assert statuses(second) == [MISSING_INTERNAL_TOPICS]
    image = broker.services.metadata.image
    assert len(image.topics["app1-counts-repartition"].partitions) == 4
    assert len(image.topics["app1-counts-changelog"].partitions) == 4
    assert image.topics["app1-counts-changelog"].configs.get("cleanup.policy") == ["compact"]

    until_stable([a])
    assert a.tasks() == {(s, p) for s in "01" for p in range(4)}
    assert a.standby == {}  # one process: nowhere else to keep a standby

    b = Member(client, "app1", topology, port=2)
    until_stable([a, b])
    assert len(a.tasks()) == len(b.tasks()) == 4
    assert a.tasks() | b.tasks() == {(s, p) for s in "01" for p in range(4)}
    # group.streams.num.standby.replicas=1: each stateful task (subtopology 1 has the
    # store) has a standby on the other process; stateless ones have none.
    assert {(s, p) for s, ps in a.standby.items() for p in ps} == {
        t for t in b.tasks() if t[0] == "1"}
    described = describe(client, "app1")
    assert described.error_code == NONE and described.group_state == "Stable"
    assert described.topology.epoch == 1
    assert [s.subtopology_id for s in described.topology.subtopologies] == ["0", "1"]
    assert {m.member_id for m in described.members} == {a.member_id, b.member_id}
    # Interactive queries: where each task's input partitions are.
    r = b.heartbeat(endpoint_information_epoch=-1)
    assert sorted(e.user_endpoint.port for e in r.partitions_by_user_endpoint) == [1, 2]

    # b leaves: a gets every task back.
    assert b.heartbeat(member_epoch=-1).error_code == NONE
    until_stable([a])
    assert len(a.tasks()) == 8
    listed = call(client, ApiKey.LIST_GROUPS, 5, {"states_filter": [],
                                                   "types_filter": ["streams"]})
    assert [(g.group_id, g.group_type) for g in listed.groups] == [("app1", "streams")]


def test_kafka_error_codes_for_bad_input(client: WireClient) -> None:
    create_topic(client, "words2", 2)
    topology = word_count("app2", "words2")
    bad = word_count("app2", "words2")
    bad["subtopologies"][1]["state_changelog_topics"][0]["partitions"] = 3
    assert Member(client, "app2", bad).heartbeat().error_code == STREAMS_INVALID_TOPOLOGY
    regex = word_count("app2", "words2")
    regex["subtopologies"][0]["source_topic_regex"] = ["w.*"]
    assert Member(client, "app2", regex).heartbeat().error_code == INVALID_REQUEST
    no_topology = Member(client, "app2", topology).heartbeat(topology=None)
    assert no_topology.error_code == INVALID_REQUEST
    assert Member(client, "app2", topology).heartbeat(member_id="").error_code == \
        INVALID_REQUEST

    a = Member(client, "app2", topology)
    assert a.heartbeat().error_code == NONE
    # Another member with a different topology of the same epoch: no topology updates.
    other = word_count("app2", "words2")
    other["subtopologies"][0]["repartition_sink_topics"] = ["elsewhere"]
    assert Member(client, "app2", other).heartbeat().error_code == INVALID_REQUEST
    ghost = Member(client, "app2", topology)
    ghost.epoch = 3
    assert ghost.heartbeat().error_code == UNKNOWN_MEMBER_ID
    assert a.heartbeat(member_epoch=a.epoch + 5).error_code == FENCED_MEMBER_EPOCH
    until_stable([a])
    # Tasks a member reports must be tasks of the topology.
    unknown = a.heartbeat(active_tasks=[{"subtopology_id": "9", "partitions": [0]}])
    assert (unknown.error_code, unknown.error_message) == (
        INVALID_REQUEST, "Subtopology 9 does not exist in the topology.")
    beyond = a.heartbeat(active_tasks=[{"subtopology_id": "0", "partitions": [7]}])
    assert (beyond.error_code, beyond.error_message) == (
        INVALID_REQUEST, "Task 7 for subtopology 0 is invalid. Number of tasks for this "
        "subtopology: 2")

    # A consumer group's id is not a streams group's, and the other way around.
    consumer = call(client, ApiKey.CONSUMER_GROUP_HEARTBEAT, 0, {
        "group_id": "app2", "member_id": "", "member_epoch": 0, "instance_id": None,
        "rack_id": None, "rebalance_timeout": 30_000, "subscribed_topic_names": ["words2"],
        "server_assignor": None, "topic_partitions": []})
    assert consumer.error_code == GROUP_ID_NOT_FOUND
    join = call(client, ApiKey.JOIN_GROUP, 5, {
        "group_id": "app2", "session_timeout": 10_000, "rebalance_timeout": 10_000,
        "member_id": "", "group_instance_id": None, "protocol_type": "consumer",
        "protocols": [{"name": "range", "metadata": b""}]})
    assert join.error_code == INCONSISTENT_GROUP_PROTOCOL
    desc = call(client, ApiKey.CONSUMER_GROUP_DESCRIBE, 0,
                {"group_ids": ["app2"], "include_authorized_operations": False})
    assert desc.groups[0].error_code == GROUP_ID_NOT_FOUND
    classic = call(client, ApiKey.DESCRIBE_GROUPS, 6, {"groups": ["app2"],
                                                        "include_authorized_operations": False})
    assert (classic.groups[0].error_code, classic.groups[0].error_message) == (
        GROUP_ID_NOT_FOUND, "Group app2 is not a classic group.")
    missing = describe(client, "nope")
    assert (missing.error_code, missing.error_message) == (GROUP_ID_NOT_FOUND,
                                                           "Group nope not found.")


def test_incorrectly_partitioned_internal_topic(client: WireClient) -> None:
    create_topic(client, "words3", 3)
    create_topic(client, "app3-counts-changelog", 5)
    m = Member(client, "app3", word_count("app3", "words3"))
    response = m.heartbeat()
    assert INCORRECTLY_PARTITIONED_TOPICS in statuses(response)
    assert response.active_tasks == ()


def test_state_survives_a_restart(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap) as client:
        create_topic(client, "words4", 2)
        a = Member(client, "app4", word_count("app4", "words4"))
        a.heartbeat()
        until_stable([a])
        before = (a.epoch, a.tasks())
    broker.restart()
    broker.run(broker.services.groups.runtime.wait_loaded())
    with WireClient(broker.bootstrap) as client:
        a.client = client
        described = describe(client, "app4")
        assert described.group_epoch == a.epoch == before[0]
        (member,) = described.members
        assert member.member_id == a.member_id and member.process_id == a.process
        assert {(t.subtopology_id, p) for t in member.assignment.active_tasks
                for p in t.partitions} == before[1]
        response = a.heartbeat()
        assert response.error_code == NONE and a.epoch == before[0]


def alter_group_config(client: WireClient, group: str, name: str, value: str) -> Any:
    response = call(client, ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, {
        "validate_only": False, "resources": [
            {"resource_type": 32, "resource_name": group, "configs": [
                {"name": name, "config_operation": 0, "value": value}]}]})
    return response.responses[0]


def test_group_config_num_standby_replicas(client: WireClient) -> None:
    too_many = alter_group_config(client, "app5", "streams.num.standby.replicas", "3")
    assert (too_many.error_code, too_many.error_message) == (
        40, "streams.num.standby.replicas must be less than or equal to 2")  # INVALID_CONFIG
    too_often = alter_group_config(client, "app5", "streams.task.offset.interval.ms", "10")
    assert (too_often.error_code, too_often.error_message) == (
        40, "streams.task.offset.interval.ms must be greater than or equal to 15000")
    assert alter_group_config(client, "app5", "streams.task.offset.interval.ms",
                              "20000").error_code == NONE
    create_topic(client, "words5", 2)
    topology = word_count("app5", "words5")
    a, b = Member(client, "app5", topology), Member(client, "app5", topology)
    assert a.heartbeat().task_offset_interval.total_seconds() == 20  # the group's own
    until_stable([a, b])
    # The broker's group.streams.num.standby.replicas=1: the stateful tasks' copies.
    assert sum(len(ps) for m in (a, b) for ps in m.standby.values()) == 2
    assert alter_group_config(client, "app5", "streams.num.standby.replicas",
                              "0").error_code == NONE
    # The group's own setting wins, and changing it rebalances the group.
    until_stable([a, b])
    assert a.standby == {} and b.standby == {}
    assert len(a.tasks()) == len(b.tasks()) == 2


def test_initial_rebalance_delay(client: WireClient) -> None:
    """Kafka 4.4: a group that was empty assigns only after its initial rebalance delay,
    so the members joining meanwhile share the first assignment."""
    create_topic(client, "words6", 2)
    create_topic(client, "app6-counts-repartition", 2)
    create_topic(client, "app6-counts-changelog", 2)
    assert alter_group_config(client, "app6", "streams.initial.rebalance.delay.ms",
                              "1000").error_code == NONE
    topology = word_count("app6", "words6")
    a, b = Member(client, "app6", topology), Member(client, "app6", topology)
    first = a.heartbeat()
    assert statuses(first) == [ASSIGNMENT_DELAYED]
    assert (first.member_epoch, first.active_tasks) == (1, ())
    assert statuses(b.heartbeat()) == [ASSIGNMENT_DELAYED]
    deadline = time.monotonic() + 10
    for _ in range(500):
        if a.tasks() and b.tasks():
            break
        assert time.monotonic() < deadline, "no assignment after the delay"
        time.sleep(0.02)  # poll interval, as a client's heartbeats
        assert all(m.heartbeat().error_code == NONE for m in (a, b))
    # The first assignment already splits the tasks: neither had them all.
    assert len(a.tasks()) == len(b.tasks()) == 2
    assert a.tasks().isdisjoint(b.tasks())


def test_delete_group(client: WireClient) -> None:
    create_topic(client, "words7", 1)
    a = Member(client, "app7", word_count("app7", "words7"))
    assert a.heartbeat().error_code == NONE

    def delete() -> int:
        response = call(client, ApiKey.DELETE_GROUPS, 2, {"groups_names": ["app7"]})
        return int(response.results[0].error_code)

    assert delete() == 68  # NON_EMPTY_GROUP
    assert a.heartbeat(member_epoch=-1).error_code == NONE
    assert describe(client, "app7").group_state == "Empty"
    assert delete() == NONE
    assert describe(client, "app7").error_code == GROUP_ID_NOT_FOUND


def test_task_offsets_and_shutdown_application(client: WireClient) -> None:
    create_topic(client, "words8", 2)
    a = Member(client, "app8", word_count("app8", "words8"))
    b = Member(client, "app8", word_count("app8", "words8"))
    a.heartbeat()
    until_stable([a, b])
    offsets = [{"subtopology_id": "1", "partition": 0, "offset": 42}]
    assert a.heartbeat(task_offsets=offsets, task_end_offsets=offsets).error_code == NONE
    (described,) = [m for m in describe(client, "app8").members if m.member_id == a.member_id]
    assert [(o.subtopology_id, o.partition, o.offset) for o in described.task_offsets] == [
        ("1", 0, 42)]
    # One member's fatal error asks every member of the application to shut down.
    assert statuses(a.heartbeat(shutdown_application=True)) == [SHUTDOWN_APPLICATION]
    response = b.heartbeat()
    assert [(s.status_code, s.status_detail) for s in response.status] == [(
        SHUTDOWN_APPLICATION, f"Streams group member {a.member_id} encountered a fatal error "
        "and requested a shutdown for the entire application.")]


def test_an_internal_topic_of_too_many_partitions_is_not_created(client: WireClient,
                                                                 broker: EmbeddedBroker) -> None:
    create_topic(client, "words9", 1)
    topology = word_count("app9", "words9")
    topology["subtopologies"][1]["repartition_source_topics"][0]["partitions"] = 2**31 - 1
    m = Member(client, "app9", topology)
    response = m.heartbeat()
    assert response.error_code == NONE and statuses(response) == [MISSING_INTERNAL_TOPICS]
    assert "app9-counts-repartition" not in broker.services.metadata.image.topics
