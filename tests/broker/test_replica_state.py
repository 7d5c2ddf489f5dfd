"""The leader's replica state machine (sans I/O): follower offsets, caught-up
times, high watermark over the maximal ISR, ISR shrink and expansion."""

from __future__ import annotations

from strom.broker.replica_state import LeaderReplicaState

LAG = 30_000


def _state(isr: tuple[int, ...] = (1, 2, 3), *, epoch_start: int = 0,
           now: int = 1_000) -> LeaderReplicaState:
    return LeaderReplicaState(1, (1, 2, 3), isr, partition_epoch=5,
                              epoch_start_offset=epoch_start, now_ms=now)


def test_hw_is_the_smallest_log_end_offset_over_the_isr() -> None:
    state = _state()
    # Followers not heard from in this leader epoch hold the HW (unknown: -1).
    assert state.high_watermark(10) == -1
    state.record_fetch(2, 7, 1_001, 10)
    assert state.high_watermark(10) == -1
    state.record_fetch(3, 9, 1_002, 10)
    assert state.high_watermark(10) == 7
    state.record_fetch(2, 10, 1_003, 10)
    assert state.high_watermark(10) == 9
    state.record_fetch(3, 10, 1_004, 10)
    assert state.high_watermark(10) == 10
    assert state.high_watermark(12) == 10  # the leader appended: followers hold it


def test_replicas_outside_the_isr_do_not_hold_the_hw() -> None:
    state = _state(isr=(1, 2))
    state.record_fetch(2, 10, 1_001, 10)
    state.record_fetch(3, 0, 1_001, 10)
    assert state.high_watermark(10) == 10


def test_pending_expansion_counts_in_the_hw() -> None:
    """Kafka's maximal ISR: the controller may already have the new member."""
    state = _state(isr=(1, 2))
    state.record_fetch(2, 10, 1_001, 10)
    state.record_fetch(3, 10, 1_001, 10)
    expanded = state.expansion(3, 10)
    assert expanded == (1, 2, 3)
    state.propose(expanded)
    assert state.maximal_isr == (1, 2, 3)
    assert state.high_watermark(15) == 10
    state.record_fetch(2, 15, 1_002, 15)
    assert state.high_watermark(15) == 10  # 3 still holds it
    state.record_fetch(3, 15, 1_002, 15)
    assert state.high_watermark(15) == 15


def test_pending_shrink_keeps_the_old_isr_in_the_hw() -> None:
    state = _state()
    state.record_fetch(2, 10, 1_000, 10)
    state.record_fetch(3, 4, 1_000, 10)
    shrunk = state.shrink(1_000 + LAG + 1, LAG, 10)
    assert shrunk == (1, 2)
    state.propose(shrunk)
    assert state.high_watermark(10) == 4  # until the controller commits it
    state.update_assignment((1, 2, 3), (1, 2), 6, 1_000 + LAG + 2)
    assert state.pending_isr is None
    assert state.high_watermark(10) == 10


def test_caught_up_at_the_leaders_log_end() -> None:
    state = _state(now=0)
    state.record_fetch(2, 10, 5_000, 10)
    assert state.followers[2].last_caught_up_ms == 5_000
    # Behind the leader's end now, but at least where the leader was at the
    # previous fetch: caught up as of that previous fetch.
    state.record_fetch(2, 10, 9_000, 20)
    assert state.followers[2].last_caught_up_ms == 5_000
    state.record_fetch(2, 20, 12_000, 30)
    assert state.followers[2].last_caught_up_ms == 9_000
    # Behind where the leader was at the previous fetch: not caught up.
    state.record_fetch(2, 25, 15_000, 40)
    assert state.followers[2].last_caught_up_ms == 9_000


def test_shrink_after_the_lag_time_only() -> None:
    state = _state(now=0)
    state.record_fetch(2, 10, 0, 10)
    state.record_fetch(3, 10, 0, 10)
    assert state.shrink(LAG, LAG, 20) is None  # exactly the lag: still in sync
    assert state.shrink(LAG + 1, LAG, 20) == (1,)
    # A follower at the leader's log end is in sync however long ago it fetched.
    assert state.shrink(LAG * 10, LAG, 10) is None


def test_shrink_drops_only_the_lagging_member() -> None:
    state = _state(now=0)
    state.record_fetch(2, 10, 0, 10)
    state.record_fetch(3, 10, 0, 10)
    state.record_fetch(2, 20, LAG, 20)  # 2 keeps up, 3 stopped
    assert state.out_of_sync(LAG + 1, LAG, 20) == (3,)
    assert state.shrink(LAG + 1, LAG, 20) == (1, 2)


def test_one_isr_change_in_flight() -> None:
    state = _state(isr=(1,), now=0)
    state.record_fetch(2, 10, 0, 10)
    state.record_fetch(3, 10, 0, 10)
    first = state.expansion(2, 10)
    assert first == (1, 2)
    state.propose(first)
    assert state.expansion(3, 10) is None
    assert state.shrink(LAG * 2, LAG, 10) is None
    state.proposal_failed()  # INELIGIBLE_REPLICA: back to the committed ISR
    assert state.pending_isr is None
    assert state.expansion(2, 10) == (1, 2)


def test_expansion_needs_the_hw_and_the_epoch_start() -> None:
    state = _state(isr=(1, 2), epoch_start=50)
    state.record_fetch(3, 40, 1_001, 60)
    assert state.expansion(3, 30) is None  # past the HW but before this epoch began
    state.record_fetch(3, 55, 1_002, 60)
    assert state.expansion(3, 58) is None  # behind the HW
    assert state.expansion(3, 55) == (1, 2, 3)
    assert state.expansion(2, 0) is None  # already a member


def test_an_older_partition_epoch_changes_nothing() -> None:
    state = _state(isr=(1, 2))
    state.propose((1, 2, 3))
    state.update_assignment((1, 2, 3), (1,), 4, 2_000)
    assert state.isr == (1, 2) and state.pending_isr == (1, 2, 3)
    state.update_assignment((1, 2, 4), (1, 2, 4), 7, 2_000)
    assert state.isr == (1, 2, 4) and state.pending_isr is None
    assert set(state.followers) == {2, 4}
