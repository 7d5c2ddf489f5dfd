"""What the rolling restart and the rolling upgrade tests share: the load they
run while brokers are replaced one by one (two idempotent acks=all writers
and a consumer group of two), where the partitions' leaders are, and the
verdict at the end (nothing acknowledged lost or duplicated, no failed send)."""

from __future__ import annotations

import time

import pytest

from tests.cluster.fault_checker import _ends, _group_reached, judge
from tests.cluster.fault_clients import GroupReader, Writer, read_topic
from tests.cluster.fault_injector import FaultInjector, wait_for
from tests.cluster.local_cluster import process_exists

#: How long after a broker's exit the others may still be seeing its
#: leaderships move for the move to count as its controlled shutdown's: well
#: below the 3 s lease of these tests, after which an exit without one would
#: move them too (the others' Metadata applies etcd's change a little after
#: the leaving broker, which exits as soon as it sees it).
MOVED_AFTER_EXIT_GRACE_S = 1.0


def leads(injector: FaultInjector, node_id: int, seen_by: int,
          partitions: int) -> set[int] | None:
    """The partitions `node_id` leads as broker `seen_by` sees them (None
    while that broker does not see all of them)."""
    snapshot = injector.view.snapshot(seen_by)
    if snapshot is None or len(snapshot.partitions) != partitions:
        return None
    return {p for p, view in snapshot.partitions.items() if view.leader == node_id}


def watch_shutdown(injector: FaultInjector, victim: int, other: int, pid: int,
                   partitions: int, timeout: float = 60.0) -> tuple[float | None, float | None]:
    """After SIGTERM to `victim` (process `pid`): seconds until broker `other`
    saw it lead nothing, and until the process exited (None: not within
    `timeout`)."""
    start = time.monotonic()
    moved_at: float | None = None
    exited_at: float | None = None
    while time.monotonic() - start < timeout and (moved_at is None or exited_at is None):
        if exited_at is None and not process_exists(pid):
            exited_at = time.monotonic() - start
        if moved_at is None and leads(injector, victim, other, partitions) == set():
            moved_at = time.monotonic() - start
        if moved_at is None and exited_at is not None \
                and time.monotonic() - start > exited_at + 2 * MOVED_AFTER_EXIT_GRACE_S:
            break  # exited without its leaderships moving: no need to wait longer
        time.sleep(0.05)
    return moved_at, exited_at


def moved_before_exit(moved_at: float | None, exited_at: float | None) -> bool:
    return moved_at is not None and (
        exited_at is None or moved_at <= exited_at + MOVED_AFTER_EXIT_GRACE_S)


class RollingLoad:
    def __init__(self, bootstrap: str, topic: str, partitions: int, group: str) -> None:
        self.bootstrap, self.topic, self.partitions = bootstrap, topic, partitions
        self.readers = [GroupReader(str(i), bootstrap, topic, group) for i in range(2)]
        self.writers = [Writer(str(i), bootstrap, topic, partitions, 100.0,
                               request_timeout_ms=10_000) for i in range(2)]

    def start(self) -> None:
        """Start the clients; return once each writer has 20 acknowledged records."""
        for thread in [*self.readers, *self.writers]:
            thread.start()
        assert wait_for(lambda: all(len(w.stats.acked) >= 20 for w in self.writers), 60)

    def wait_for_new_acks(self) -> None:
        """Every writer has a record acknowledged after this call."""
        last = time.monotonic()
        assert wait_for(lambda: all(w.stats.acked and w.stats.acked[-1].at > last
                                    for w in self.writers), 60)

    def stop_writers(self) -> None:
        for writer in self.writers:
            writer.stopping.set()
        for writer in self.writers:
            writer.join(writer.flush_timeout + 30)

    def judge(self, label: str, notes: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        """After stop_writers: the group reads everything acknowledged, the
        topic holds each acknowledged record once, and no send failed."""
        writers, readers = self.writers, self.readers
        acked = sorted((a for w in writers for a in w.stats.acked), key=lambda a: a.at)
        ends = _ends(acked)
        try:
            assert wait_for(lambda: _group_reached(readers, ends), 60, 0.2)
        finally:
            for reader in readers:
                reader.stopping.set()
            for reader in readers:
                reader.join(30)
        verdict = judge(acked, read_topic(self.bootstrap, self.topic, self.partitions,
                                          timeout=60),
                        [seen for r in readers for seen in r.seen])
        failed = {name: n for w in writers for name, n in w.stats.failed.items()}
        with capsys.disabled():
            print("\n" + "\n".join(notes) + f"\n{label}: {len(acked)} acknowledged, "
                  f"{len(verdict.lost)} lost, {len(verdict.duplicated)} duplicated, "
                  f"failed sends {failed}", flush=True)
        assert verdict.ok, (verdict.summary(), notes)
        assert failed == {}
        assert [f for w in writers for f in w.stats.fatal] == []
        assert sum(w.stats.unresolved for w in writers) == 0
        assert len(acked) > 0
