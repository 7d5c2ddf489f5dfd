"""The leader's view of a replicated partition, sans I/O (Kafka's Partition
and Replica state on the leader): each follower's log end offset and when it
was last caught up, the ISR as committed by the controller and the change
proposed to it (AlterPartition, one in flight), the high watermark they allow,
and when to shrink or expand the ISR. Time is passed in (milliseconds), so
tests drive it directly.

Kafka's rules, kept here:
- A follower's fetch offset is its log end offset (it fetches from there).
- It is caught up at a fetch whose offset reaches the leader's log end
  offset; a fetch that reaches the leader's log end offset as of the
  follower's previous fetch proves it was caught up at that previous fetch
  (under steady appends a follower never quite reaches the moving end).
- The high watermark is the smallest log end offset over the *maximal* ISR:
  the committed ISR plus a replica whose addition is pending, so records are
  never committed past a replica the controller may already count in the ISR.
  It never moves backwards; a follower whose offset is unknown (-1, not
  fetched since this leader epoch began) holds it where it is.
- Shrink: an ISR member (not the leader) not caught up within
  `replica.lag.time.max.ms` and not at the leader's log end offset.
- Expand: a replica outside the ISR whose log end offset has reached both
  the high watermark and the start of the current leader epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(slots=True)
class FollowerState:
    replica_id: int
    #: -1: unknown (no fetch in this leader epoch yet).
    log_end_offset: int = -1
    last_caught_up_ms: int = 0
    last_fetch_ms: int = 0
    #: The leader's log end offset at this follower's previous fetch.
    last_fetch_leader_log_end_offset: int = -1


class LeaderReplicaState:
    """Followers, ISR and pending ISR change of one partition this broker leads."""

    def __init__(self, node_id: int, replicas: Sequence[int], isr: Sequence[int], *,
                 partition_epoch: int, epoch_start_offset: int, now_ms: int) -> None:
        self.node_id = node_id
        self.replicas: tuple[int, ...] = tuple(replicas)
        self.isr: tuple[int, ...] = tuple(isr)
        self.partition_epoch = partition_epoch
        #: The log end offset when the current leader epoch began: a replica joins
        #: the ISR only once it holds everything of earlier epochs (Kafka's
        #: leaderEpochStartOffset check).
        self.epoch_start_offset = epoch_start_offset
        #: The ISR proposed to the controller and not answered yet; None if none.
        self.pending_isr: tuple[int, ...] | None = None
        # ISR members count as caught up now (Kafka's makeLeader resets them so).
        self.followers: dict[int, FollowerState] = {
            r: FollowerState(r, last_caught_up_ms=now_ms if r in self.isr else 0)
            for r in self.replicas if r != node_id}

    @property
    def maximal_isr(self) -> tuple[int, ...]:
        pending = self.pending_isr
        if pending is None:
            return self.isr
        return self.isr + tuple(r for r in pending if r not in self.isr)

    def update_assignment(self, replicas: Sequence[int], isr: Sequence[int],
                          partition_epoch: int, now_ms: int) -> None:
        """A newer partition epoch from the controller (an ISR change, ours or
        not, or a reassignment): it replaces the committed state, and any pending
        proposal is answered by it."""
        if partition_epoch < self.partition_epoch:
            return
        self.replicas = tuple(replicas)
        self.isr = tuple(isr)
        self.partition_epoch = partition_epoch
        self.pending_isr = None
        for r in self.replicas:
            if r != self.node_id and r not in self.followers:
                self.followers[r] = FollowerState(r)
        for r in [r for r in self.followers if r not in self.replicas]:
            del self.followers[r]

    def is_replica(self, replica_id: int) -> bool:
        return replica_id in self.followers

    def record_fetch(self, replica_id: int, fetch_offset: int, now_ms: int,
                     leader_log_end_offset: int) -> None:
        """A fetch from `replica_id` at `fetch_offset` (Kafka's updateFetchState)."""
        state = self.followers[replica_id]
        if fetch_offset >= leader_log_end_offset:
            state.last_caught_up_ms = max(state.last_caught_up_ms, now_ms)
        elif fetch_offset >= state.last_fetch_leader_log_end_offset >= 0:
            state.last_caught_up_ms = max(state.last_caught_up_ms, state.last_fetch_ms)
        state.log_end_offset = fetch_offset
        state.last_fetch_leader_log_end_offset = leader_log_end_offset
        state.last_fetch_ms = now_ms

    def high_watermark(self, leader_log_end_offset: int) -> int:
        """The smallest log end offset over the maximal ISR (-1 when a member's
        is unknown: the caller keeps its high watermark)."""
        low = leader_log_end_offset
        followers = self.followers
        for r in self.maximal_isr:
            if r != self.node_id:
                state = followers.get(r)
                offset = state.log_end_offset if state is not None else -1
                if offset < low:
                    low = offset
        return low

    def expansion(self, replica_id: int, high_watermark: int) -> tuple[int, ...] | None:
        """The ISR with `replica_id` added, if it should join now (none pending)."""
        if self.pending_isr is not None or replica_id in self.isr:
            return None
        state = self.followers.get(replica_id)
        if state is None or state.log_end_offset < 0:
            return None
        if state.log_end_offset < high_watermark or \
                state.log_end_offset < self.epoch_start_offset:
            return None
        return (*self.isr, replica_id)

    def out_of_sync(self, now_ms: int, max_lag_ms: int,
                    leader_log_end_offset: int) -> tuple[int, ...]:
        """ISR members (not the leader) that are not caught up (Kafka's
        getOutOfSyncReplicas)."""
        lagging = []
        for r in self.isr:
            if r == self.node_id:
                continue
            state = self.followers.get(r)
            if state is None or (state.log_end_offset != leader_log_end_offset
                                 and now_ms - state.last_caught_up_ms > max_lag_ms):
                lagging.append(r)
        return tuple(lagging)

    def shrink(self, now_ms: int, max_lag_ms: int,
               leader_log_end_offset: int) -> tuple[int, ...] | None:
        """The ISR without its lagging members, if any lag (none pending)."""
        if self.pending_isr is not None:
            return None
        lagging = self.out_of_sync(now_ms, max_lag_ms, leader_log_end_offset)
        if not lagging:
            return None
        return tuple(r for r in self.isr if r not in lagging)

    def propose(self, new_isr: Sequence[int]) -> None:
        assert self.pending_isr is None, "one ISR change in flight per partition"
        self.pending_isr = tuple(new_isr)

    def proposal_failed(self) -> None:
        """The controller refused the change without a newer state to follow
        (INELIGIBLE_REPLICA, OPERATION_NOT_ATTEMPTED): back to the committed ISR,
        to be proposed again when the conditions still hold."""
        self.pending_isr = None
