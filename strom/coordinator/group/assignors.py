"""Server-side assignors of consumer (KIP-848) groups: uniform and range.

An assignor maps the group's members to partitions of the topics each one
subscribes to. It is pure: members' subscriptions (topic ids), partition
counts and the previous target assignment in, the new target out.

- uniform: balanced across all members (partition counts differ by at most
  one among members with the same subscriptions) and sticky: a partition
  stays with its previous owner unless balance requires moving it.
- range: per topic, the members subscribed to it sorted by member id get
  contiguous ranges, the first ones one partition more when it does not
  divide evenly (the classic RangeAssignor's layout, which co-partitions
  topics with equal partition counts).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

Assignment = dict[uuid.UUID, frozenset[int]]
TopicPartition = tuple[uuid.UUID, int]


@dataclass(frozen=True, slots=True)
class MemberSpec:
    member_id: str
    topics: frozenset[uuid.UUID]
    previous: Mapping[uuid.UUID, frozenset[int]]


def _to_assignment(partitions: set[TopicPartition]) -> Assignment:
    out: dict[uuid.UUID, set[int]] = {}
    for topic, partition in partitions:
        out.setdefault(topic, set()).add(partition)
    return {t: frozenset(ps) for t, ps in out.items()}


def uniform(members: list[MemberSpec], partition_counts: Mapping[uuid.UUID, int]
            ) -> dict[str, Assignment]:
    ids = sorted(m.member_id for m in members)
    spec = {m.member_id: m for m in members}
    owned: dict[str, set[TopicPartition]] = {m: set() for m in ids}
    owner: dict[TopicPartition, str] = {}
    eligible: dict[TopicPartition, list[str]] = {}
    for topic, count in sorted(partition_counts.items()):
        subscribers = [m for m in ids if topic in spec[m].topics]
        for p in range(count):
            if subscribers:
                eligible[(topic, p)] = subscribers
    # Sticky pass: previous owners keep what they may still have.
    for member_id in ids:
        for topic, partitions in spec[member_id].previous.items():
            for p in partitions:
                tp = (topic, p)
                if tp in eligible and tp not in owner and member_id in eligible[tp]:
                    owner[tp] = member_id
                    owned[member_id].add(tp)
    # Unowned partitions go to the eligible member with the fewest, scarcest first.
    for tp in sorted((tp for tp in eligible if tp not in owner),
                     key=lambda tp: (len(eligible[tp]), str(tp[0]), tp[1])):
        target = min(eligible[tp], key=lambda m: (len(owned[m]), m))
        owner[tp] = target
        owned[target].add(tp)
    # Balance: move a partition from a member to an eligible one holding two fewer,
    # until none can move. Each move lowers the sum of squared counts, so it ends.
    moved = True
    while moved:
        moved = False
        for src in sorted(ids, key=lambda m: (-len(owned[m]), m)):
            for tp in sorted(owned[src], key=lambda tp: (str(tp[0]), tp[1]), reverse=True):
                dst = min(eligible[tp], key=lambda m: (len(owned[m]), m))
                if len(owned[dst]) + 1 < len(owned[src]):
                    owned[src].discard(tp)
                    owned[dst].add(tp)
                    owner[tp] = dst
                    moved = True
                    break
            if moved:
                break
    return {m: _to_assignment(owned[m]) for m in ids}


def range_(members: list[MemberSpec], partition_counts: Mapping[uuid.UUID, int]
           ) -> dict[str, Assignment]:
    ids = sorted(m.member_id for m in members)
    spec = {m.member_id: m for m in members}
    owned: dict[str, set[TopicPartition]] = {m: set() for m in ids}
    for topic, count in sorted(partition_counts.items()):
        subscribers = [m for m in ids if topic in spec[m].topics]
        if not subscribers:
            continue
        quota, extra = divmod(count, len(subscribers))
        start = 0
        for i, member_id in enumerate(subscribers):
            size = quota + (1 if i < extra else 0)
            owned[member_id].update((topic, p) for p in range(start, start + size))
            start += size
    return {m: _to_assignment(owned[m]) for m in ids}


ASSIGNORS = {"uniform": uniform, "range": range_}
