"""Kafka's checks of a StreamsGroupHeartbeat before the coordinator runs it: the
request's fields (INVALID_REQUEST) and the topology (STREAMS_INVALID_TOPOLOGY)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from strom.coordinator.group.errors import InvalidRequestError
from strom.coordinator.group.modern import check_heartbeat_ids
from strom.coordinator.group.streams import TasksTuple
from strom.errors import ErrorCode, KafkaError

LEAVE_GROUP_MEMBER_EPOCH = -1
LEAVE_GROUP_STATIC_MEMBER_EPOCH = -2


class StreamsInvalidTopologyError(KafkaError):
    code = ErrorCode.streams_invalid_topology


@dataclass(frozen=True, slots=True)
class StreamsHeartbeat:
    """A StreamsGroupHeartbeat, version-independent (None: unchanged since the last)."""

    group_id: str
    member_id: str
    member_epoch: int
    endpoint_information_epoch: int = 0
    instance_id: str | None = None
    rack_id: str | None = None
    rebalance_timeout_ms: int = -1
    topology: dict[str, Any] | None = None  # a StreamsGroupTopology record's fields
    owned: TasksTuple | None = None
    process_id: str | None = None
    user_endpoint: tuple[str, int] | None = None
    client_tags: tuple[tuple[str, str], ...] | None = None
    shutdown_application: bool = False
    # (subtopology, partition, offset) of the changelogs; None: unchanged.
    task_offsets: tuple[tuple[str, int, int], ...] | None = None
    task_end_offsets: tuple[tuple[str, int, int], ...] | None = None
    client_id: str = ""
    client_host: str = ""


def validate(request: StreamsHeartbeat, task_lists_present: tuple[bool, bool, bool]) -> None:
    """Kafka's checks of a StreamsGroupHeartbeat's fields, before the coordinator runs."""
    topology = request.topology
    if topology is not None:
        for sub in topology["subtopologies"]:
            if sub["source_topic_regex"]:
                raise InvalidRequestError(
                    "Regular expressions for source topics are not supported yet.")
    if not request.member_id:
        raise InvalidRequestError("MemberId can't be empty.")
    check_heartbeat_ids(request.group_id, request.instance_id, request.rack_id)
    epoch = request.member_epoch
    if epoch == 0:
        if request.rebalance_timeout_ms == -1:
            raise InvalidRequestError("RebalanceTimeoutMs must be provided in first request.")
        if request.owned is not None:
            for name, kind in zip(("ActiveTasks", "StandbyTasks", "WarmupTasks"),
                                  request.owned.kinds(), strict=True):
                if kind:
                    raise InvalidRequestError(f"{name} must be empty when (re-)joining.")
        if topology is None:
            raise InvalidRequestError("Topology must be non-null when (re-)joining.")
        validate_topology(topology)
    elif epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH:
        if request.instance_id is None:
            raise InvalidRequestError("InstanceId can't be null.")
    elif epoch < LEAVE_GROUP_STATIC_MEMBER_EPOCH:
        raise InvalidRequestError(
            f"MemberEpoch is {epoch}, but must be greater than or equal to -2.")
    if any(task_lists_present) and not all(task_lists_present):
        raise InvalidRequestError("If one task-type is non-null, all must be non-null.")
    if epoch != 0 and topology is not None:
        raise InvalidRequestError("Topology can only be provided when (re-)joining.")


def validate_topology(topology: Mapping[str, Any]) -> None:
    """What makes a topology invalid (STREAMS_INVALID_TOPOLOGY) before any topic is looked
    at: a changelog topic with a partition count, a subtopology id twice, a copartition
    group pointing at no topic."""
    seen: set[str] = set()
    for sub in topology["subtopologies"]:
        sub_id = sub["subtopology_id"]
        if sub_id in seen:
            raise StreamsInvalidTopologyError(f"Duplicate subtopology id {sub_id}.")
        seen.add(sub_id)
        for info in sub["state_changelog_topics"]:
            if info["partitions"] != 0:
                raise StreamsInvalidTopologyError(
                    f"Changelog topic {info['name']} must have an undefined partition count, "
                    f"but it is set to {info['partitions']}.")
        for info in sub["repartition_source_topics"]:
            if info["partitions"] < 0:
                raise StreamsInvalidTopologyError(
                    f"Repartition topic {info['name']} has a negative partition count.")
        for group in sub["copartition_groups"]:
            for key, size in (("source_topics", len(sub["source_topics"])),
                              ("repartition_source_topics",
                               len(sub["repartition_source_topics"]))):
                for i in group[key]:
                    if not 0 <= i < size:
                        raise StreamsInvalidTopologyError(
                            f"Copartition group of subtopology {sub_id} refers to "
                            f"{key} index {i}, which does not exist.")
