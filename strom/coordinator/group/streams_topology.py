"""A streams group's topology, and how it is configured against the cluster's topics.

The first member to join a streams group (KIP-1071) brings the application's
topology: subtopologies, each reading source topics and repartition topics,
writing repartition topics and owning changelog topics. The coordinator
keeps it in a StreamsGroupTopology record and configures it against the
metadata image, as Kafka's InternalTopicManager does:

1. every source topic must exist (else MISSING_SOURCE_TOPICS);
2. a repartition topic without a fixed partition count gets the largest
   task count of the subtopologies writing to it, until nothing changes;
3. copartitioned topics must agree (else INCORRECTLY_PARTITIONED_TOPICS); a
   repartition topic in a copartition group takes the group's count;
4. a changelog topic has one partition per task of its subtopology;
5. internal topics missing from the cluster are to be created
   (MISSING_INTERNAL_TOPICS until they are); an existing one with another
   partition count is INCORRECTLY_PARTITIONED_TOPICS.

A subtopology has as many tasks as its largest input topic has partitions.
Only a topology configured without any of these problems is "ready": the
assignor runs on it; otherwise members get no tasks and a status saying why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from strom.cluster.image import MetadataImage

# StreamsGroupHeartbeatResponse.Status codes.
STALE_TOPOLOGY = 0
MISSING_SOURCE_TOPICS = 1
INCORRECTLY_PARTITIONED_TOPICS = 2
MISSING_INTERNAL_TOPICS = 3
SHUTDOWN_APPLICATION = 4
ASSIGNMENT_DELAYED = 5


@dataclass(frozen=True, slots=True)
class InternalTopic:
    """A repartition or changelog topic as the coordinator would create it."""

    name: str
    partitions: int
    replication_factor: int  # -1: the broker's default
    configs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ConfiguredSubtopology:
    number_of_tasks: int
    source_topics: tuple[str, ...]
    repartition_source_topics: tuple[InternalTopic, ...]
    repartition_sink_topics: tuple[str, ...]
    state_changelog_topics: tuple[InternalTopic, ...]

    @property
    def input_topics(self) -> tuple[str, ...]:
        return self.source_topics + tuple(t.name for t in self.repartition_source_topics)


@dataclass(frozen=True, slots=True)
class ConfiguredTopology:
    topology_epoch: int
    subtopologies: Mapping[str, ConfiguredSubtopology] | None
    status_code: int | None = None
    status_detail: str = ""
    to_create: tuple[InternalTopic, ...] = field(default=())

    @property
    def is_ready(self) -> bool:
        return self.status_code is None and self.subtopologies is not None


class _TopicConfigurationError(Exception):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def topic_names(topology: Mapping[str, Any]) -> set[str]:
    """Every topic a topology names: the ones whose metadata its configuration uses."""
    names: set[str] = set()
    for sub in topology["subtopologies"]:
        names.update(sub["source_topics"])
        names.update(sub["repartition_sink_topics"])
        names.update(t["name"] for t in sub["repartition_source_topics"])
        names.update(t["name"] for t in sub["state_changelog_topics"])
    return names


def configure(topology: Mapping[str, Any], image: MetadataImage) -> ConfiguredTopology:
    """The topology (a StreamsGroupTopology record's fields) against the image."""
    epoch = int(topology["epoch"])
    subs: Sequence[Mapping[str, Any]] = topology["subtopologies"]

    def existing(name: str) -> int | None:
        topic = image.topics.get(name)
        return len(topic.partitions) if topic is not None else None

    try:
        missing = sorted({t for sub in subs for t in sub["source_topics"]
                          if existing(t) is None})
        if missing:
            raise _TopicConfigurationError(
                MISSING_SOURCE_TOPICS, f"Source topics {', '.join(missing)} are missing.")
        decided = _repartition_counts(subs, existing)
        _enforce_copartitioning(subs, existing, decided)
        configured: dict[str, ConfiguredSubtopology] = {}
        for sub in subs:
            def count(name: str) -> int:
                known = existing(name)
                return known if known is not None else decided[name]

            repartition = tuple(_internal(t, t["partitions"] or count(t["name"]))
                                for t in sub["repartition_source_topics"])
            inputs = [count(t) for t in sub["source_topics"]] + [t.partitions
                                                                  for t in repartition]
            tasks = max(inputs, default=0)
            configured[sub["subtopology_id"]] = ConfiguredSubtopology(
                tasks, tuple(sub["source_topics"]), repartition,
                tuple(sub["repartition_sink_topics"]),
                tuple(_internal(t, tasks) for t in sub["state_changelog_topics"]))
        to_create: dict[str, InternalTopic] = {}
        for sub_config in configured.values():
            for topic in sub_config.repartition_source_topics + sub_config.state_changelog_topics:
                found = existing(topic.name)
                if found is None:
                    to_create[topic.name] = topic
                elif found != topic.partitions:
                    raise _TopicConfigurationError(
                        INCORRECTLY_PARTITIONED_TOPICS,
                        f"Existing topic {topic.name} has different number of partitions: "
                        f"expected {topic.partitions}, found {found}")
    except _TopicConfigurationError as exc:
        return ConfiguredTopology(epoch, None, exc.code, exc.detail)
    if to_create:
        return ConfiguredTopology(
            epoch, configured, MISSING_INTERNAL_TOPICS,
            f"Internal topics are missing: [{', '.join(sorted(to_create))}]",
            tuple(to_create[name] for name in sorted(to_create)))
    return ConfiguredTopology(epoch, configured)


def _internal(info: Mapping[str, Any], partitions: int) -> InternalTopic:
    return InternalTopic(info["name"], partitions, info["replication_factor"] or -1,
                         tuple((c["key"], c["value"]) for c in info["topic_configs"]))


def _repartition_counts(subs: Sequence[Mapping[str, Any]],
                        existing: Any) -> dict[str, int]:
    """Partition counts of the repartition topics without a fixed one: the largest
    input of the subtopologies writing to them, iterated to a fixed point as
    repartition topics feed each other."""
    decided: dict[str, int] = {}
    for sub in subs:
        for info in sub["repartition_source_topics"]:
            if info["partitions"]:
                decided[info["name"]] = info["partitions"]
    flexible = {info["name"] for sub in subs for info in sub["repartition_source_topics"]
                if not info["partitions"]}
    for _ in range(len(flexible) + 1):
        changed = False
        for name in sorted(flexible):
            counts = []
            for sub in subs:
                if name not in sub["repartition_sink_topics"]:
                    continue
                for topic in list(sub["source_topics"]) + [
                        t["name"] for t in sub["repartition_source_topics"]]:
                    known = existing(topic)
                    if known is None:
                        known = decided.get(topic)
                    if known is not None:
                        counts.append(known)
            if counts and decided.get(name) != max(counts):
                decided[name] = max(counts)
                changed = True
        if not changed:
            break
    unresolved = sorted(n for n in flexible if n not in decided and existing(n) is None)
    if unresolved:
        raise _TopicConfigurationError(
            MISSING_SOURCE_TOPICS,
            f"Unable to determine the number of partitions of {', '.join(unresolved)}.")
    return decided


def _enforce_copartitioning(subs: Sequence[Mapping[str, Any]], existing: Any,
                            decided: dict[str, int]) -> None:
    for sub in subs:
        sources: list[str] = list(sub["source_topics"])
        repartition: list[Mapping[str, Any]] = list(sub["repartition_source_topics"])
        for group in sub["copartition_groups"]:
            fixed: dict[str, int] = {}
            flexible: list[str] = []
            for i in group["source_topics"]:
                if not 0 <= i < len(sources):
                    raise _TopicConfigurationError(INCORRECTLY_PARTITIONED_TOPICS,
                                                   f"Copartition group index {i} is invalid.")
                count = existing(sources[i])
                if count is not None:
                    fixed[sources[i]] = count
            for i in group["repartition_source_topics"]:
                if not 0 <= i < len(repartition):
                    raise _TopicConfigurationError(INCORRECTLY_PARTITIONED_TOPICS,
                                                   f"Copartition group index {i} is invalid.")
                info = repartition[i]
                if info["partitions"]:
                    fixed[info["name"]] = info["partitions"]
                else:
                    flexible.append(info["name"])
            if len(set(fixed.values())) > 1:
                raise _TopicConfigurationError(
                    INCORRECTLY_PARTITIONED_TOPICS,
                    "Following topics do not have the same number of partitions: "
                    f"[{', '.join(f'{n}={c}' for n, c in sorted(fixed.items()))}]")
            if fixed:
                target = next(iter(fixed.values()))
            else:
                target = max((decided.get(n, 0) for n in flexible), default=0)
            for name in flexible:
                if existing(name) is None:
                    decided[name] = target
