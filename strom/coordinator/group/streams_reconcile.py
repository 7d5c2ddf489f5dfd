"""One step of a streams group member towards its target assignment (Kafka's
CurrentAssignmentBuilder for streams groups), and the epoch checks of a heartbeat.

A member first gives up the tasks it must revoke (UNREVOKED_TASKS: its epoch
stays until it stops reporting them), then gets the tasks of its target that
are free (UNRELEASED_TASKS while some are still held elsewhere): an active
task is free when no other member holds it and no other member of the same
process holds it as standby or warm-up; a standby or warm-up task when no
other member of the same process holds it in any role.
"""

from __future__ import annotations

from dataclasses import replace

from strom.coordinator.group.errors import FencedMemberEpochError
from strom.coordinator.group.streams import (
    MemberState,
    StreamsGroup,
    StreamsGroupMember,
    TasksTuple,
)


def check_epoch(member: StreamsGroupMember, received: int, owned: TasksTuple | None) -> None:
    if received > member.member_epoch:
        raise FencedMemberEpochError(
            f"The streams group member has a greater member epoch ({received}) than the one "
            f"known by the group coordinator ({member.member_epoch}). The member must abandon "
            "all its tasks and rejoin.")
    if received < member.member_epoch and (
            received != member.previous_member_epoch or (
                owned is not None and not _is_subset(owned, member.assigned))):
        raise FencedMemberEpochError(
            f"The streams group member has a smaller member epoch ({received}) than the one "
            f"known by the group coordinator ({member.member_epoch}). The member must abandon "
            "all its tasks and rejoin.")


def _is_subset(owned: TasksTuple, assigned: TasksTuple) -> bool:
    for mine, theirs in zip(owned.kinds(), assigned.kinds(), strict=True):
        for sub, ps in mine.items():
            if not ps <= theirs.get(sub, frozenset()):
                return False
    return True


def reconcile(member: StreamsGroupMember, target_epoch: int, target: TasksTuple,
              group: StreamsGroup, owned: TasksTuple | None) -> StreamsGroupMember:
    """One step of Kafka's CurrentAssignmentBuilder for streams groups."""
    if member.state is MemberState.STABLE:
        if member.member_epoch == target_epoch:
            return member
        return _next(member, target_epoch, target, group, owned)
    if member.state is MemberState.UNREVOKED_TASKS:
        if owned is None or owned.contains_any(member.pending_revocation):
            return member
        return _next(member, target_epoch, target, group, owned)
    if member.state is MemberState.UNRELEASED_TASKS:
        return _next(member, target_epoch, target, group, owned)
    if owned is None or not owned.is_empty():
        raise FencedMemberEpochError("The streams group member is in a unknown state. The "
                                     "member must abandon all its tasks and rejoin.")
    return _next(member, target_epoch, target, group, owned)


def _next(member: StreamsGroupMember, target_epoch: int, target: TasksTuple,
          group: StreamsGroup, owned: TasksTuple | None) -> StreamsGroupMember:
    me, process = member.member_id, member.process_id

    def unreleased_active(sub: str, p: int) -> bool:
        return (group.active_owner(sub, p, excluding=me) is not None
                or process in group.other_role_processes(sub, p, excluding=me))

    def unreleased_other(sub: str, p: int) -> bool:
        return (group.active_owner(sub, p, excluding=me) == process
                or process in group.other_role_processes(sub, p, excluding=me))

    kept: list[dict[str, frozenset[int]]] = []
    revoke: list[dict[str, frozenset[int]]] = []
    add: list[dict[str, frozenset[int]]] = []
    has_unreleased = False
    checks = (unreleased_active, unreleased_other, unreleased_other)
    for current, wanted, unreleased in zip(member.assigned.kinds(), target.kinds(), checks,
                                           strict=True):
        k: dict[str, frozenset[int]] = {}
        r: dict[str, frozenset[int]] = {}
        a: dict[str, frozenset[int]] = {}
        for sub in set(current) | set(wanted):
            have = current.get(sub, frozenset())
            want = wanted.get(sub, frozenset())
            both = have & want
            pending = {p for p in want - have if not unreleased(sub, p)}
            if len(pending) < len(want - have):
                has_unreleased = True
            if both:
                k[sub] = both
            if have - want:
                r[sub] = have - want
            if pending:
                a[sub] = frozenset(pending)
        kept.append(k)
        revoke.append(r)
        add.append(a)
    to_revoke = TasksTuple(*revoke)
    if not to_revoke.is_empty() and (owned is None or owned.contains_any(to_revoke)):
        return replace(member, state=MemberState.UNREVOKED_TASKS,
                       assigned=TasksTuple(*kept), pending_revocation=to_revoke)
    assigned = TasksTuple(*({s: k.get(s, frozenset()) | a.get(s, frozenset())
                             for s in set(k) | set(a)} for k, a in zip(kept, add, strict=True)))
    epochs = {t: e for t, e in member.active_epochs.items()
              if t[1] in assigned.active.get(t[0], ())}
    for sub, ps in add[0].items():
        for p in ps:
            epochs[(sub, p)] = target_epoch
    return replace(member, state=(MemberState.UNRELEASED_TASKS if has_unreleased
                                  else MemberState.STABLE),
                   member_epoch=target_epoch,
                   previous_member_epoch=(member.previous_member_epoch
                                          if target_epoch == member.member_epoch
                                          else member.member_epoch),
                   assigned=assigned, pending_revocation=TasksTuple(), active_epochs=epochs)
