"""Disk errors at the storage boundary: OSError in, KafkaStorageError out.

Every write path of storage (segment appends and rolls, index and checkpoint
files, partition directories) and the metadata file turn an OSError into a
`KafkaStorageError` here, which handlers answer as KAFKA_STORAGE_ERROR
(retriable: clients back off and retry) instead of a traceback and
UNKNOWN_SERVER_ERROR.

Logging is per condition, not per request: a full disk fails every produce
request, thousands a second. The first failure of a kind (errno) on a file
system logs one WARNING naming the file and the free space; later failures
log at DEBUG; the next successful write there logs one INFO that writes work
again. A condition that keeps flapping (a full disk where small writes still
fit) logs its WARNING/INFO pair at most once per `REPEAT_S` per file system.

The state is process-wide on purpose: a file system is shared by every log,
checkpoint and broker using it, and one line per file system is the point.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
import time
from pathlib import Path

from strom.errors import KafkaStorageError, LogDirFullError

__all__ = ["LogDirFullError", "clear", "failing", "storage_error", "translate"]

log = logging.getLogger(__name__)

#: A condition that clears and comes back within this many seconds is not
#: logged again at WARNING (small writes fit, large ones do not).
REPEAT_S = 60.0

_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


class _Condition:
    __slots__ = ("errno", "path", "since", "warned_at")

    def __init__(self, code: int, path: Path, now: float) -> None:
        self.errno = code
        self.path = path
        self.since = now
        self.warned_at = now


_lock = threading.Lock()
#: (st_dev of the file system, errno) -> the condition, while it lasts.
_active: dict[tuple[int, int], _Condition] = {}
#: (st_dev, errno) -> when its last WARNING was logged, after it cleared.
_last_warned: dict[tuple[int, int], float] = {}


def failing() -> bool:
    """Whether any disk condition is active (a dict check: cheap enough for
    the append path, which calls `clear` only while one is)."""
    return bool(_active)


def _device(path: Path) -> int:
    for candidate in (path, *path.parents):
        try:
            return os.stat(candidate).st_dev
        except OSError:
            continue
    return -1


def _free_bytes(path: Path) -> str:
    for candidate in (path, *path.parents):
        try:
            return f"{shutil.disk_usage(candidate).free} bytes free"
        except OSError:
            continue
    return "free space unknown"


def storage_error(exc: OSError, path: Path, action: str) -> KafkaStorageError:
    """The KafkaStorageError for `exc`, raised while `action` on `path`; logs
    the condition once (see the module docstring)."""
    code = exc.errno or 0
    reason = os.strerror(code) if code else str(exc)
    message = f"cannot {action} {path}: {reason}"
    key = (_device(path), code)
    now = time.monotonic()
    with _lock:
        condition = _active.get(key)
        if condition is None:
            _active[key] = _Condition(code, path, now)
            recently = now - _last_warned.get(key, -REPEAT_S) < REPEAT_S
            level = logging.DEBUG if recently else logging.WARNING
            if not recently:
                _last_warned[key] = now
        else:
            level = logging.DEBUG
    if log.isEnabledFor(level):
        if level == logging.WARNING and code in _NO_SPACE:
            log.warning("%s (%s); writes to this file system fail with KAFKA_STORAGE_ERROR "
                        "until space is freed (DeleteRecords, DeleteTopics, retention)",
                        message, _free_bytes(path))
        elif level == logging.WARNING:
            log.warning("%s; writes to this file system fail with KAFKA_STORAGE_ERROR",
                        message)
        else:
            log.debug("%s", message)
    error_type = LogDirFullError if code in _NO_SPACE else KafkaStorageError
    return error_type(message)


def clear(path: Path) -> None:
    """A write to `path` succeeded: end the conditions of its file system."""
    if not _active:
        return
    device = _device(path)
    with _lock:
        ended = [key for key in _active if key[0] == device]
        conditions = [_active.pop(key) for key in ended]
    now = time.monotonic()
    for key, condition in zip(ended, conditions, strict=True):
        if _last_warned.get(key) == condition.warned_at:
            log.info("writes to %s succeed again after %.1f s (%s)", path,
                     now - condition.since, _free_bytes(path))
        else:
            log.debug("writes to %s succeed again", path)


class translate:
    """`with translate(path, "write"):` turns an OSError into a KafkaStorageError."""

    __slots__ = ("path", "action")

    def __init__(self, path: Path, action: str) -> None:
        self.path = path
        self.action = action

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if isinstance(exc, OSError):
            raise storage_error(exc, self.path, self.action) from exc
