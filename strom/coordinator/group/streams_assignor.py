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
- `num_standby_replicas` standby copies of every stateful task go to distinct
  processes, never the active one's; with rack-aware tags
  (group.streams.rack.aware.assignment.tags) to members whose client tag values
  differ from those of the members already holding the task in the most tag
  dimensions; then to members that had the task as a standby, then the least
  loaded.

Warm-up tasks (KIP-441's probing rebalances) are not produced: a task moves
to its new owner at once and restores there (docs/streams-groups.md).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field

from strom.coordinator.group.streams import TasksTuple

NAME = "sticky"
Task = tuple[str, int]


@dataclass(frozen=True, slots=True)
class AssignmentMember:
    member_id: str
    process_id: str
    previous: TasksTuple
    client_tags: Mapping[str, str] = field(default_factory=dict)


def assign(members: list[AssignmentMember], tasks_per_subtopology: Mapping[str, int],
           num_standby_replicas: int, rack_tags: tuple[str, ...] = (),
           stateful: frozenset[str] | None = None) -> dict[str, TasksTuple]:
    """`stateful`: the subtopologies with state (changelog topics), the only ones whose
    tasks get standbys, as in Kafka; None: all."""
    if not members:
        return {}
    tasks = [(sub, p) for sub in sorted(tasks_per_subtopology)
             for p in range(tasks_per_subtopology[sub])]
    valid = set(tasks)
    by_id = {m.member_id: m for m in members}
    ordered = sorted(by_id)
    active: dict[str, set[Task]] = {m: set() for m in ordered}
    # Balanced means every member has `quota` tasks or one more; `extra` of them may
    # have one more.
    quota, extra = divmod(len(tasks), len(ordered))
    owner: dict[Task, str] = {}
    process_members: dict[str, list[str]] = {}
    for m in ordered:
        process_members.setdefault(by_id[m].process_id, []).append(m)
    process_total = dict.fromkeys(process_members, 0)
    previous_standby: dict[Task, list[str]] = {}
    for m in ordered:
        for sub, ps in by_id[m].previous.standby.items():
            for p in ps:
                previous_standby.setdefault((sub, p), []).append(m)

    def give(member_id: str, task: Task) -> None:
        active[member_id].add(task)
        owner[task] = member_id
        process_total[by_id[member_id].process_id] += 1

    # 1. Sticky: a task stays with its previous active owner within its quota, and
    # within one more while some member may have one more.
    previous_owner: dict[Task, str] = {}
    for m in ordered:
        for sub, ps in sorted(by_id[m].previous.active.items()):
            for p in sorted(ps):
                if (sub, p) in valid and (sub, p) not in previous_owner:
                    previous_owner[(sub, p)] = m
                    if len(active[m]) < quota:
                        give(m, (sub, p))
    for task, m in previous_owner.items():
        if extra and task not in owner and len(active[m]) == quota:
            give(m, task)
            extra -= 1
    # 2. A task with a previous standby goes there, if that member has room.
    for task in tasks:
        if task not in owner:
            for m in previous_standby.get(task, ()):
                if len(active[m]) < quota or (extra and len(active[m]) == quota):
                    if len(active[m]) == quota:
                        extra -= 1
                    give(m, task)
                    break
    # 3. The rest to the least-loaded process (tasks per member), then its least-loaded
    # member: heaps with stale entries skipped (an entry is current when its load is).
    def process_load(process: str) -> float:
        return process_total[process] / len(process_members[process])

    processes = [(process_load(pr), pr) for pr in process_members]
    heapq.heapify(processes)
    members_of = {pr: [(len(active[m]), m) for m in ids] for pr, ids in process_members.items()}
    for heap in members_of.values():
        heapq.heapify(heap)
    for task in tasks:
        if task in owner:
            continue
        while processes[0][0] != process_load(processes[0][1]):
            heapq.heapreplace(processes, (process_load(processes[0][1]), processes[0][1]))
        process = processes[0][1]
        heap = members_of[process]
        while heap[0][0] != len(active[heap[0][1]]):
            heapq.heapreplace(heap, (len(active[heap[0][1]]), heap[0][1]))
        m = heap[0][1]
        give(m, task)
        heapq.heapreplace(heap, (len(active[m]), m))
        heapq.heapreplace(processes, (process_load(process), process))

    standby: dict[str, set[Task]] = {m: set() for m in ordered}
    replicas = min(num_standby_replicas, len(process_members) - 1)
    if replicas > 0:
        _place_standbys([t for t in tasks if stateful is None or t[0] in stateful],
                        replicas, by_id, ordered, owner, active, standby,
                        previous_standby, rack_tags, previous_owner)

    def grouped(items: set[tuple[str, int]]) -> dict[str, frozenset[int]]:
        out: dict[str, set[int]] = {}
        for sub, p in items:
            out.setdefault(sub, set()).add(p)
        return {sub: frozenset(ps) for sub, ps in out.items()}

    return {m: TasksTuple(grouped(active[m]), grouped(standby[m]), {}) for m in ordered}


def _place_standbys(tasks: list[Task], replicas: int, by_id: Mapping[str, AssignmentMember],
                    ordered: list[str], owner: Mapping[Task, str],
                    active: Mapping[str, set[Task]], standby: dict[str, set[Task]],
                    previous_standby: Mapping[Task, list[str]],
                    rack_tags: tuple[str, ...], previous_owner: Mapping[Task, str]) -> None:
    """`replicas` standbys of every task on distinct processes other than its active's:
    where its state already is (its previous active owner, then a previous standby)
    unless that member would carry more than one task above the least loaded."""
    def load(i: str) -> int:
        return len(active[i]) + len(standby[i])

    # The least-loaded members first, stale heap entries skipped as above.
    heap = [(load(m), m) for m in ordered]
    heapq.heapify(heap)

    def least_loaded(used: set[str]) -> str | None:
        skipped = []
        pick = None
        while heap:
            current, m = heap[0]
            if current != load(m):
                heapq.heapreplace(heap, (load(m), m))
                continue
            if by_id[m].process_id in used:
                skipped.append(heapq.heappop(heap))
                continue
            pick = m
            break
        for entry in skipped:
            heapq.heappush(heap, entry)
        return pick

    for task in tasks:
        used = {by_id[owner[task]].process_id}
        seen = {key: {by_id[owner[task]].client_tags.get(key)} for key in rack_tags}
        for _ in range(replicas):
            had = [m for m in previous_standby.get(task, ()) if by_id[m].process_id not in used]
            if rack_tags:
                # Tag dimensions in which a member would add a value not used yet: the
                # most wins (an O(members) scan, only with rack-aware tags).
                def spread(i: str) -> int:
                    return sum(by_id[i].client_tags.get(k) not in seen[k]  # noqa: B023
                               for k in rack_tags)

                candidates = [m for m in ordered if by_id[m].process_id not in used]
                if not candidates:
                    break
                best = max(spread(m) for m in candidates)
                candidates = [m for m in candidates if spread(m) == best]
                had = [m for m in had if m in candidates]
                pick: str | None = min(had or candidates, key=lambda i: (load(i), i))
            else:
                least = least_loaded(used)
                previous = previous_owner.get(task)
                if previous is not None and by_id[previous].process_id not in used:
                    had = [previous, *had]
                pick = least
                if least is not None:
                    for m in had:
                        if load(m) <= load(least) + 1:
                            pick = m
                            break
            if pick is None:
                break
            standby[pick].add(task)  # its heap entry is now stale: refreshed when on top
            used.add(by_id[pick].process_id)
            for key in rack_tags:
                seen[key].add(by_id[pick].client_tags.get(key))
