"""Time strom's streams-group task assignor (strom/coordinator/group/streams_assignor.py):
a first assignment, and a sticky one after a member joined, for groups of growing size.
It runs on the group coordinator's event loop when a group's epoch moves.

    .venv/bin/python bench/streams_assignor.py
"""

from __future__ import annotations

import statistics
import time

from strom.coordinator.group.streams import TasksTuple
from strom.coordinator.group.streams_assignor import AssignmentMember, assign


def main() -> None:
    for members, tasks in ((10, 100), (100, 2000), (500, 10000)):
        group = [AssignmentMember(f"m{i}", f"p{i // 2}", TasksTuple()) for i in range(members)]
        counts = {"0": tasks // 2, "1": tasks - tasks // 2}
        first, after_join = [], []
        for _ in range(5):
            start = time.perf_counter()
            result = assign(group, counts, 1)
            first.append(time.perf_counter() - start)
            grown = [AssignmentMember(m.member_id, m.process_id, result[m.member_id])
                     for m in group] + [AssignmentMember("new", "p-new", TasksTuple())]
            start = time.perf_counter()
            assign(grown, counts, 1)
            after_join.append(time.perf_counter() - start)
        print(f"{members:4} members {tasks:6} tasks, 1 standby: first "
              f"{statistics.median(first) * 1000:7.1f} ms, after a join "
              f"{statistics.median(after_join) * 1000:7.1f} ms (median of 5)")


if __name__ == "__main__":
    main()
