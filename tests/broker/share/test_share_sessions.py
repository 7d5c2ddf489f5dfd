"""ShareSessionCache: the share_session_epoch rules and the cache limit."""

from __future__ import annotations

import uuid

import pytest

from strom.broker.share.sessions import ShareSessionCache
from strom.errors import (
    InvalidRequestError,
    InvalidShareSessionEpochError,
    ShareSessionLimitReachedError,
    ShareSessionNotFoundError,
)

T = uuid.uuid4()


def test_epochs_partitions_and_close() -> None:
    cache = ShareSessionCache(max_sessions=2)
    opened = cache.for_fetch("g", "m", 0, [(T, 0), (T, 1)], [], has_acknowledgements=False,
                             connection_id=1)
    assert opened.initial and opened.partitions == ((T, 0), (T, 1))
    with pytest.raises(InvalidShareSessionEpochError):
        cache.for_fetch("g", "m", 2, [], [], has_acknowledgements=False, connection_id=1)
    nxt = cache.for_fetch("g", "m", 1, [(T, 2)], [(T, 0)], has_acknowledgements=True,
                          connection_id=1)
    assert nxt.partitions == ((T, 1), (T, 2)) and not nxt.initial
    assert cache.for_acknowledge("g", "m", 2).session.epoch == 3
    closed = cache.for_acknowledge("g", "m", -1)
    assert closed.final and cache.get("g", "m") is None
    with pytest.raises(ShareSessionNotFoundError):
        cache.for_fetch("g", "m", 3, [], [], has_acknowledgements=False, connection_id=1)
    with pytest.raises(ShareSessionNotFoundError):
        cache.for_acknowledge("g", "m", -1)


def test_initial_rules_and_limit() -> None:
    cache = ShareSessionCache(max_sessions=1)
    with pytest.raises(InvalidRequestError):
        cache.for_fetch("g", "m", 0, [], [], has_acknowledgements=True, connection_id=1)
    with pytest.raises(InvalidShareSessionEpochError):
        cache.for_acknowledge("g", "m", 0)
    cache.for_fetch("g", "m", 0, [], [], has_acknowledgements=False, connection_id=1)
    # The member may reopen its own session; another member finds the cache full.
    cache.for_fetch("g", "m", 0, [], [], has_acknowledgements=False, connection_id=1)
    with pytest.raises(ShareSessionLimitReachedError):
        cache.for_fetch("g", "other", 0, [], [], has_acknowledgements=False, connection_id=2)
    assert [s.member_id for s in cache.connection_closed(1)] == ["m"]
    assert len(cache) == 0


def test_sessions_follow_their_last_connection() -> None:
    cache = ShareSessionCache()
    cache.for_fetch("g", "a", 0, [], [], has_acknowledgements=False, connection_id=1)
    cache.for_fetch("g", "b", 0, [], [], has_acknowledgements=False, connection_id=1)
    cache.for_fetch("g", "c", 0, [], [], has_acknowledgements=False, connection_id=1)
    cache.for_fetch("g", "a", 1, [], [], has_acknowledgements=False, connection_id=2)
    cache.for_acknowledge("g", "c", -1)  # closed by its member: not the connection's any more
    assert [s.member_id for s in cache.connection_closed(1)] == ["b"]
    assert cache.connection_closed(1) == []
    assert [s.member_id for s in cache.connection_closed(2)] == ["a"]
    assert len(cache) == 0
