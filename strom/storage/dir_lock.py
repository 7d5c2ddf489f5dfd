"""The `.lock` file of a data directory: one broker per directory (Kafka's
FileLock, taken by LogManager.lockLogDirs).

A second broker on the same `log.dirs` would recover the live broker's
segments under it and write a clean-shutdown marker into a directory still
being written. Each directory's `.lock` (empty; only the lock matters) is
locked exclusively at start-up and stays locked until the broker stops; the
kernel drops the lock when the process dies, so a kill -9 leaves nothing to
clean up.

Two locks on the same open file: flock, which also conflicts between two
brokers in one process (embedded brokers, tests), and a POSIX record lock
(lockf), the one Kafka's FileChannel.tryLock takes on Linux, so that strom
and Apache Kafka refuse each other's directories too.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable
from pathlib import Path

from strom.errors import KafkaStorageError
from strom.storage import files


class LogDirLockedError(KafkaStorageError):
    """Another broker holds the directory's lock."""


class LogDirLocks:
    def __init__(self) -> None:
        self._fds: dict[Path, int] = {}

    @classmethod
    def acquire(cls, directories: Iterable[Path]) -> LogDirLocks:
        """Lock every directory (creating it if missing), or none: raises
        LogDirLockedError naming the first one another broker holds."""
        locks = cls()
        try:
            for directory in directories:
                locks._lock(Path(directory))
        except BaseException:
            locks.release()
            raise
        return locks

    def _lock(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / files.LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LogDirLockedError(
                f"cannot lock {path}: another broker (strom or Kafka) is using the data "
                f"directory {directory}; stop it, or give this one other log.dirs"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._fds[directory] = fd

    def release(self) -> None:
        """Unlock every directory (closing the file drops both locks)."""
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)
