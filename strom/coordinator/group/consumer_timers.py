"""The timers of a consumer group's (KIP-848) members, one key each:

- `consumer-session-<group>-<member>` fences a member that stopped heartbeating
  (a classic member's session timeout is the one of its JoinGroup);
- `consumer-rebalance-<group>-<member>` fences one that did not revoke its
  partitions within its rebalance timeout;
- `consumer-join-<group>-<member>` and `consumer-sync-<group>-<member>` are the
  classic members' (`classic_members.py` schedules them): a member told to
  rejoin, or one that joined, must JoinGroup, or SyncGroup, within its
  rebalance timeout.

An expiry fences through the manager (`consumer_protocol.py`); it finds the
member by id again, as the group may have moved on since the timer was set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from strom.coordinator.group.consumer import ConsumerGroup, ConsumerGroupMember, MemberState
from strom.coordinator.group.context import ShardContext
from strom.coordinator.runtime import Result

log = logging.getLogger(__name__)


def session_key(group_id: str, member_id: str) -> str:
    return f"consumer-session-{group_id}-{member_id}"


def rebalance_key(group_id: str, member_id: str) -> str:
    return f"consumer-rebalance-{group_id}-{member_id}"


def join_key(group_id: str, member_id: str) -> str:
    """A classic member told to rejoin must do so within its rebalance timeout."""
    return f"consumer-join-{group_id}-{member_id}"


def sync_key(group_id: str, member_id: str) -> str:
    """A classic member that joined must send SyncGroup within its rebalance timeout."""
    return f"consumer-sync-{group_id}-{member_id}"


class ConsumerGroupTimers:
    def __init__(self, ctx: ShardContext, find: Callable[[str], ConsumerGroup | None],
                 fence: Callable[[ConsumerGroup, ConsumerGroupMember], Result[Any]]) -> None:
        self.ctx = ctx
        self.find = find
        self.fence = fence

    def cancel_timers(self, group_id: str, member_id: str) -> None:
        for key in (session_key, rebalance_key, join_key, sync_key):
            self.ctx.timer.cancel(key(group_id, member_id))

    def schedule_session_timeout(self, group_id: str, member: ConsumerGroupMember) -> None:
        """A classic member's session timeout is the one of its JoinGroup."""
        member_id = member.member_id
        timeout = (member.classic.session_timeout_ms if member.classic is not None
                   else self.ctx.config.session_timeout_ms(
                       self.ctx.image().group_configs.get(group_id, {})))
        self.ctx.timer.schedule(session_key(group_id, member_id), timeout,
                                lambda: self._expire_session(group_id, member_id))

    def _expire_session(self, group_id: str, member_id: str) -> Result[Any]:
        group = self.find(group_id)
        member = group.members.get(member_id) if group is not None else None
        if group is None or member is None:
            return Result(None)
        log.info("consumer group %s: member %s session expired", group_id, member_id)
        return self.fence(group, member)

    def schedule_rebalance_timeout(self, group_id: str, member_id: str, epoch: int,
                                   timeout_ms: int) -> None:
        def expire() -> Result[Any]:
            group = self.find(group_id)
            member = group.members.get(member_id) if group is not None else None
            if (group is None or member is None or member.member_epoch != epoch
                    or member.state is not MemberState.UNREVOKED_PARTITIONS):
                return Result(None)
            log.info("consumer group %s: member %s did not revoke in time", group_id,
                     member_id)
            return self.fence(group, member)

        self.ctx.timer.schedule(rebalance_key(group_id, member_id), max(timeout_ms, 0),
                                expire)

    def cancel_rebalance_timeout(self, group_id: str, member_id: str) -> None:
        self.ctx.timer.cancel(rebalance_key(group_id, member_id))

    def on_loaded(self, group: ConsumerGroup) -> None:
        for member in group.members.values():
            self.schedule_session_timeout(group.group_id, member)
            if member.state is MemberState.UNREVOKED_PARTITIONS:
                self.schedule_rebalance_timeout(group.group_id, member.member_id,
                                                member.member_epoch,
                                                member.rebalance_timeout_ms)
