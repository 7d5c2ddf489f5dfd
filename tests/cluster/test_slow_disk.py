"""tests/cluster/slow_disk.py: a broker's data dir on a file system of its
own whose writes the slow-disk fault throttles in the block layer, until
healed; everything is removed on close."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.cluster import slow_disk

REASON = slow_disk.unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def fsynced_writes(path: Path, count: int) -> float:
    """Seconds to write and fsync `count` blocks of 64 KiB."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        started = time.monotonic()
        for _ in range(count):
            os.write(fd, b"x" * 65536)
            os.fsync(fd)
        return time.monotonic() - started
    finally:
        os.close(fd)


def test_a_slow_disk_throttles_its_writes_until_healed(tmp_path: Path) -> None:
    data = tmp_path / "broker-1" / "data"
    disks = slow_disk.SlowDisks(tmp_path / "disks")
    try:
        disks.mount("broker-1", data)
        assert os.path.ismount(data)
        assert list(data.iterdir()) == []  # no lost+found in a log dir
        assert disks.limits("broker-1") == []
        disks.slow("broker-1")
        number = disks.disks["broker-1"].number
        assert disks.limits("broker-1") == [f"{number} {slow_disk.WRITE_IOPS}",
                                            f"{number} {slow_disk.WRITE_BPS}"]
        # 20 fsync'd writes are at least 40 device writes (data and journal):
        # at 20 a second, not under a second, however idle the machine.
        assert fsynced_writes(data / "slow", 20) >= 1.0
        disks.heal()
        assert disks.limits("broker-1") == []
        fsynced_writes(data / "fast", 20)
    finally:
        disks.close()
    assert not os.path.ismount(data)
    assert not (tmp_path / "disks" / "broker-1.img").exists()
