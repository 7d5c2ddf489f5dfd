"""Share sessions (KIP-932): which partitions a share consumer fetches.

A share consumer keeps one share session per broker, keyed by (group id,
member id). ShareFetch's share_session_epoch drives it:

- 0 opens a session with the request's partitions (replacing one the member
  had); acknowledgements are not allowed in it (INVALID_REQUEST), and a full
  cache refuses it (SHARE_SESSION_LIMIT_REACHED, group.share.max.share.sessions);
- n > 0 continues it: the session must exist (SHARE_SESSION_NOT_FOUND) and
  expect n (INVALID_SHARE_SESSION_EPOCH); the request's partitions are added,
  its forgotten ones removed, and the session's next epoch is n + 1;
- -1 closes it after the request's acknowledgements: the member's acquired
  records are released (SharePartitionManager), and it may not fetch.

ShareAcknowledge follows the same epochs, except that it cannot open a
session (epoch 0: INVALID_SHARE_SESSION_EPOCH). A session also ends when the
connection that opened it closes, as Kafka's ShareSessionCache listens for
disconnects; sessions are never evicted to make room (Kafka 4.x).

Sans-I/O: the cache only answers which partitions a request covers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from strom.errors import (
    InvalidRequestError,
    InvalidShareSessionEpochError,
    ShareSessionLimitReachedError,
    ShareSessionNotFoundError,
)

INITIAL_EPOCH = 0
FINAL_EPOCH = -1
_MAX_EPOCH = 2**31 - 1

#: (topic id, partition)
TopicIdPartition = tuple[uuid.UUID, int]
SessionKey = tuple[str, str]  # (group id, member id)


@dataclass(slots=True)
class ShareSession:
    group_id: str
    member_id: str
    connection_id: int
    #: The epoch the next request must carry.
    epoch: int = 1
    #: Insertion-ordered, as Kafka's ImplicitLinkedHashCollection.
    partitions: dict[TopicIdPartition, None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ShareSessionContext:
    session: ShareSession
    #: The partitions this request fetches (empty for a closing request).
    partitions: tuple[TopicIdPartition, ...]
    initial: bool
    final: bool


def _next_epoch(epoch: int) -> int:
    return 1 if epoch >= _MAX_EPOCH else epoch + 1


class ShareSessionCache:
    def __init__(self, max_sessions: int = 2000) -> None:
        self.max_sessions = max_sessions
        self._sessions: dict[SessionKey, ShareSession] = {}
        # Sessions by the connection they were last used on: every closed
        # connection asks, and most have none.
        self._by_connection: dict[int, set[SessionKey]] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, group_id: str, member_id: str) -> ShareSession | None:
        return self._sessions.get((group_id, member_id))

    def sessions(self) -> list[ShareSession]:
        return list(self._sessions.values())

    def for_fetch(self, group_id: str, member_id: str, epoch: int,
                  requested: Iterable[TopicIdPartition], forgotten: Iterable[TopicIdPartition],
                  *, has_acknowledgements: bool, connection_id: int) -> ShareSessionContext:
        """The session context of a ShareFetch; raises the session errors."""
        requested = tuple(requested)
        key = (group_id, member_id)
        if epoch == INITIAL_EPOCH:
            if has_acknowledgements:
                raise InvalidRequestError(
                    "Acknowledge data present in the initial share fetch request")
            if key not in self._sessions and len(self._sessions) >= self.max_sessions:
                raise ShareSessionLimitReachedError(
                    f"the share session cache is full ({self.max_sessions} sessions)")
            self._unindex(self._sessions.get(key))
            session = ShareSession(group_id, member_id, connection_id,
                                   partitions=dict.fromkeys(requested))
            self._sessions[key] = session
            self._by_connection.setdefault(connection_id, set()).add(key)
            return ShareSessionContext(session, tuple(session.partitions), True, False)
        if epoch == FINAL_EPOCH:
            # Its partitions carry the last acknowledgements; nothing is fetched.
            return ShareSessionContext(self._close(key), (), False, True)
        session = self._current(key, epoch)
        for tp in forgotten:
            session.partitions.pop(tp, None)
        for tp in requested:
            session.partitions.setdefault(tp, None)
        session.epoch = _next_epoch(epoch)
        if session.connection_id != connection_id:
            self._unindex(session)
            session.connection_id = connection_id
            self._by_connection.setdefault(connection_id, set()).add(key)
        return ShareSessionContext(session, tuple(session.partitions), False, False)

    def for_acknowledge(self, group_id: str, member_id: str, epoch: int
                        ) -> ShareSessionContext:
        """The session context of a ShareAcknowledge."""
        key = (group_id, member_id)
        if epoch == INITIAL_EPOCH:
            raise InvalidShareSessionEpochError(
                "a share acknowledge cannot open a share session (epoch 0)")
        if epoch == FINAL_EPOCH:
            return ShareSessionContext(self._close(key), (), False, True)
        session = self._current(key, epoch)
        session.epoch = _next_epoch(epoch)
        return ShareSessionContext(session, (), False, False)

    def _current(self, key: SessionKey, epoch: int) -> ShareSession:
        session = self._sessions.get(key)
        if session is None:
            raise ShareSessionNotFoundError(f"no share session for member {key[1]}")
        if epoch != session.epoch:
            raise InvalidShareSessionEpochError(
                f"expected share session epoch {session.epoch}, got {epoch}")
        return session

    def _close(self, key: SessionKey) -> ShareSession:
        session = self._sessions.pop(key, None)
        if session is None:
            raise ShareSessionNotFoundError(f"no share session for member {key[1]}")
        self._unindex(session)
        return session

    def remove(self, group_id: str, member_id: str) -> ShareSession | None:
        session = self._sessions.pop((group_id, member_id), None)
        self._unindex(session)
        return session

    def _unindex(self, session: ShareSession | None) -> None:
        if session is None:
            return
        keys = self._by_connection.get(session.connection_id)
        if keys is not None:
            keys.discard((session.group_id, session.member_id))
            if not keys:
                del self._by_connection[session.connection_id]

    def connection_closed(self, connection_id: int) -> list[ShareSession]:
        """Remove and return the sessions last used on the closed connection."""
        keys = self._by_connection.pop(connection_id, None)
        if not keys:
            return []
        return [self._sessions.pop(key) for key in keys]

    def forget_partition(self, tp: TopicIdPartition) -> None:
        for session in self._sessions.values():
            session.partitions.pop(tp, None)
