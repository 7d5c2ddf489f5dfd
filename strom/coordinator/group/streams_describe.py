"""StreamsGroupDescribe's view of a streams group, and where its tasks' partitions are
for interactive queries (the heartbeat's partitions_by_user_endpoint)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from strom.cluster.image import MetadataImage
from strom.coordinator.group.streams import (
    StreamsGroup,
    StreamsGroupMember,
    Tasks,
    TasksTuple,
    tasks_out,
)
from strom.coordinator.group.streams_topology import ConfiguredTopology, InternalTopic, configure
from strom.errors import ErrorCode


def describe_group(group: StreamsGroup, image: MetadataImage) -> dict[str, Any]:
    """A StreamsGroupDescribe entry (without authorized operations)."""
    topology: dict[str, Any] | None = None
    if group.topology is not None:
        configured = group.configured
        if configured is None:
            configured = configure(group.topology, image)
        subtopologies = None
        if configured.subtopologies is not None:
            subtopologies = [{
                "subtopology_id": sub_id, "source_topics": sorted(sub.source_topics),
                "repartition_sink_topics": sorted(sub.repartition_sink_topics),
                "state_changelog_topics": [_topic_info(t) for t in
                                           sub.state_changelog_topics],
                "repartition_source_topics": [_topic_info(t) for t in
                                              sub.repartition_source_topics],
            } for sub_id, sub in sorted(configured.subtopologies.items())]
        topology = {"epoch": group.topology_epoch, "subtopologies": subtopologies}

    def assignment(tasks: TasksTuple) -> dict[str, Any]:
        return {"active_tasks": tasks_out(tasks.active),
                "standby_tasks": tasks_out(tasks.standby),
                "warmup_tasks": tasks_out(tasks.warmup)}

    return {
        "error_code": ErrorCode.none, "error_message": None, "group_id": group.group_id,
        "group_state": group.state_name, "group_epoch": group.group_epoch,
        "assignment_epoch": group.assignment_epoch, "topology": topology,
        "members": [{
            "member_id": m.member_id, "member_epoch": m.member_epoch,
            "instance_id": m.instance_id, "rack_id": m.rack_id,
            "client_id": m.client_id, "client_host": m.client_host,
            "topology_epoch": m.topology_epoch, "process_id": m.process_id,
            "user_endpoint": None if m.user_endpoint is None else {
                "host": m.user_endpoint[0], "port": m.user_endpoint[1]},
            "client_tags": [{"key": k, "value": v} for k, v in m.client_tags],
            "task_offsets": _offsets(group.task_offsets.get(m.member_id, {})),
            "task_end_offsets": _offsets(group.task_end_offsets.get(m.member_id, {})),
            "assignment": assignment(m.assigned),
            "target_assignment": assignment(group.target.get(m.member_id, TasksTuple())),
            "is_classic": False,
        } for m in group.members.values()],
    }


def endpoints(members: Mapping[str, StreamsGroupMember],
               configured: ConfiguredTopology | None) -> list[dict[str, Any]]:
    """Where every task's input partitions are, by member endpoint (interactive
    queries): Kafka's EndpointToPartitions."""
    if configured is None or configured.subtopologies is None:
        return []
    subs = configured.subtopologies
    partition_counts: dict[str, int] = {}
    for sub in subs.values():
        for name in sub.source_topics:
            partition_counts[name] = sub.number_of_tasks
        for topic in sub.repartition_source_topics:
            partition_counts[topic.name] = topic.partitions

    def partitions(tasks: Tasks) -> list[dict[str, Any]]:
        by_topic: dict[str, set[int]] = {}
        for sub_id, ps in tasks.items():
            sub = subs.get(sub_id)
            if sub is None:
                continue
            for name in sub.input_topics:
                by_topic.setdefault(name, set()).update(
                    p for p in ps if p < partition_counts.get(name, 0))
        return [{"topic": t, "partitions": sorted(ps)}
                for t, ps in sorted(by_topic.items()) if ps]

    out = []
    for member in sorted(members.values(), key=lambda m: m.member_id):
        if member.user_endpoint is None:
            continue
        out.append({"user_endpoint": {"host": member.user_endpoint[0],
                                      "port": member.user_endpoint[1]},
                    "active_partitions": partitions(member.assigned.active),
                    "standby_partitions": partitions(member.assigned.standby)})
    return out


def _offsets(offsets: Mapping[tuple[str, int], int]) -> list[dict[str, Any]]:
    return [{"subtopology_id": s, "partition": p, "offset": o}
            for (s, p), o in sorted(offsets.items())]


def _topic_info(topic: InternalTopic) -> dict[str, Any]:
    return {"name": topic.name, "partitions": topic.partitions,
            "replication_factor": max(topic.replication_factor, 0),
            "topic_configs": [{"key": k, "value": v} for k, v in topic.configs]}
