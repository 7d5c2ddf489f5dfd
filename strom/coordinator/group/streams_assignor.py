"""The server-side task assignor of streams groups: Kafka's "sticky" assignor, restated.

Input: the members (with their process ids and the tasks they held in the
previous target assignment) and the number of tasks of every subtopology.
Output: every member's active and standby tasks. Its aims, in Kafka's order:

- every task is active on exactly one member;
- active tasks are balanced over processes by their number of members, then
  over the members of a process;
- a task stays with the member that had it (sticky), as long as that member
  stays within its fair share; failing that, it goes to a member that had it
  as a standby (its state is there already); then to the least-loaded member;
- `num_standby_replicas` standby copies of every task go to distinct
  processes, never the active one's; with rack-aware tags
  (group.streams.rack.aware.assignment.tags) to members whose client tag values
  differ from those of the members already holding the task in the most tag
  dimensions; then to members that had the task as a standby, then the least
  loaded.

Warm-up tasks (KIP-441's probing rebalances) are not produced: a task moves
to its new owner at once and restores there (docs/streams-groups.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from strom.coordinator.group.streams import TasksTuple

NAME = "sticky"


@dataclass(frozen=True, slots=True)
class AssignmentMember:
    member_id: str
    process_id: str
    previous: TasksTuple
    client_tags: Mapping[str, str] = field(default_factory=dict)


def assign(members: list[AssignmentMember], tasks_per_subtopology: Mapping[str, int],
           num_standby_replicas: int, rack_tags: tuple[str, ...] = ()
           ) -> dict[str, TasksTuple]:
    if not members:
        return {}
    tasks = [(sub, p) for sub in sorted(tasks_per_subtopology)
             for p in range(tasks_per_subtopology[sub])]
    by_id = {m.member_id: m for m in members}
    ordered = sorted(by_id)
    active: dict[str, set[tuple[str, int]]] = {m: set() for m in ordered}
    quota = math.ceil(len(tasks) / len(ordered)) if tasks else 0
    owner: dict[tuple[str, int], str] = {}
    process_members: dict[str, list[str]] = {}
    for m in ordered:
        process_members.setdefault(by_id[m].process_id, []).append(m)

    def process_load(process: str) -> float:
        ids = process_members[process]
        return sum(len(active[m]) for m in ids) / len(ids)

    def give(member_id: str, task: tuple[str, int]) -> None:
        active[member_id].add(task)
        owner[task] = member_id

    # 1. Sticky: a task stays with its previous active owner within its quota.
    for m in ordered:
        for sub, ps in sorted(by_id[m].previous.active.items()):
            for p in sorted(ps):
                task = (sub, p)
                if (sub in tasks_per_subtopology and p < tasks_per_subtopology[sub]
                        and task not in owner and len(active[m]) < quota):
                    give(m, task)
    # 2. A task with a previous standby goes there, if that member has room.
    for task in tasks:
        if task in owner:
            continue
        for m in ordered:
            sub, p = task
            if p in by_id[m].previous.standby.get(sub, ()) and len(active[m]) < quota:
                give(m, task)
                break
    # 3. The rest to the least-loaded process, then member.
    for task in tasks:
        if task in owner:
            continue
        m = min(ordered, key=lambda i: (process_load(by_id[i].process_id), len(active[i]), i))
        give(m, task)

    standby: dict[str, set[tuple[str, int]]] = {m: set() for m in ordered}
    processes = sorted(process_members)
    replicas = min(num_standby_replicas, len(processes) - 1)
    if replicas > 0:
        def load(i: str) -> int:
            return len(active[i]) + len(standby[i])

        for task in tasks:
            sub, p = task
            used = {by_id[owner[task]].process_id}
            seen = {key: {by_id[owner[task]].client_tags.get(key)} for key in rack_tags}
            for _ in range(replicas):
                candidates = [m for m in ordered if by_id[m].process_id not in used]
                if not candidates:
                    break

                def spread(i: str) -> int:
                    """Tag dimensions in which member i would add a value not used yet."""
                    return sum(by_id[i].client_tags.get(key) not in seen[key]  # noqa: B023
                               for key in rack_tags)

                best = max(spread(m) for m in candidates)
                candidates = [m for m in candidates if spread(m) == best]
                had = [m for m in candidates if p in by_id[m].previous.standby.get(sub, ())]
                pick = min(had or candidates, key=lambda i: (load(i), i))
                standby[pick].add(task)
                used.add(by_id[pick].process_id)
                for key in rack_tags:
                    seen[key].add(by_id[pick].client_tags.get(key))

    def grouped(items: set[tuple[str, int]]) -> dict[str, frozenset[int]]:
        out: dict[str, set[int]] = {}
        for sub, p in items:
            out.setdefault(sub, set()).add(p)
        return {sub: frozenset(ps) for sub, ps in out.items()}

    return {m: TasksTuple(grouped(active[m]), grouped(standby[m]), {}) for m in ordered}
