"""A view's lifecycle state, its progress, and how progress is reported.

States are data: `ViewState` and the table of legal transitions, checked in
one place (`check_transition`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from strom.views.store import TopicPartition

__all__ = ["ViewState", "Progress", "check_transition"]


class ViewState(enum.Enum):
    CREATED = "created"
    """Not started. Snapshots serve whatever the store holds."""

    RESTORING = "restoring"
    """Applying the records that existed when the view started (or when the
    broker came back). Snapshots serve the last committed batch; progress is
    logged every `progress_interval` seconds."""

    LIVE = "live"
    """Reached the high watermarks it started with; applies records as they come."""

    PAUSED = "paused"
    """Stopped applying for a rebuild; snapshots keep serving the last state."""

    FAILED = "failed"
    """A handler or the store raised. The failing batch was rolled back; the store
    holds the state before it. `catch_up` raises ViewFailed."""

    STOPPED = "stopped"
    """Stopped by `stop()`. Snapshots still work until the store is closed."""


_TRANSITIONS: dict[ViewState, set[ViewState]] = {
    ViewState.CREATED: {ViewState.RESTORING, ViewState.STOPPED, ViewState.FAILED},
    ViewState.RESTORING: {ViewState.LIVE, ViewState.PAUSED, ViewState.FAILED,
                          ViewState.STOPPED},
    ViewState.LIVE: {ViewState.PAUSED, ViewState.FAILED, ViewState.STOPPED},
    ViewState.PAUSED: {ViewState.RESTORING, ViewState.FAILED, ViewState.STOPPED},
    ViewState.FAILED: {ViewState.STOPPED, ViewState.PAUSED, ViewState.RESTORING},
    ViewState.STOPPED: {ViewState.RESTORING},
}


def check_transition(old: ViewState, new: ViewState) -> None:
    if new is not old and new not in _TRANSITIONS[old]:
        raise RuntimeError(f"illegal view state transition {old.value} -> {new.value}")


@dataclass(frozen=True)
class Progress:
    """Where a view stands. `targets` are the high watermarks it is catching up
    to (empty until the broker answered); `positions` the next offset to apply."""

    view: str
    state: ViewState
    positions: dict[TopicPartition, int]
    targets: dict[TopicPartition, int]
    applied: int
    """Records applied since the view started."""
    elapsed: float
    rate: float
    """Records applied per second, over the last reporting interval."""
    broker_error: str | None = None
    log_start: dict[TopicPartition, int] = field(default_factory=dict)

    @property
    def remaining(self) -> int:
        return sum(max(0, hw - max(self.positions.get(tp, 0), self.log_start.get(tp, 0)))
                   for tp, hw in self.targets.items())

    @property
    def total(self) -> int:
        """Records between where the view started and the targets, approximately:
        applied so far plus what remains."""
        return self.applied + self.remaining

    def __str__(self) -> str:
        done = self.applied
        total = self.total
        pct = f" ({100 * done / total:.0f}%)" if total else ""
        eta = f", eta {self.remaining / self.rate:.0f}s" if self.rate > 0 and self.remaining else ""
        error = f"; broker: {self.broker_error}" if self.broker_error else ""
        return (f"view {self.view} {self.state.value}: {done:,} of {total:,} records"
                f"{pct}, {self.rate:,.0f} records/s{eta}{error}")
