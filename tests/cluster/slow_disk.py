"""A slow disk for a broker, from outside the broker: each broker's data
directory is a file system of its own (ext4 on a loop device backed by a
sparse file), and the fault throttles that device's writes in the block
layer (cgroup v1 blkio throttling on the root group: every write to the
device, the broker's own, the kernel's writeback and ext4's journal, waits
for its turn). The same for strom and Kafka: neither knows.

    disks = SlowDisks(tmp / "disks")
    disks.mount("broker-1", data_dir)   # before the broker starts
    disks.slow("broker-1")              # 20 writes/s, 1 MiB/s
    disks.heal()
    disks.close()                       # after the brokers stopped

What it costs a broker follows from what it writes synchronously: strom's
acks=all waits for the leader's fsync (group commit), Kafka's does not
(the page cache absorbs the writes; its KRaft metadata log is fsync'd).

Needs root, losetup, mkfs.ext4 and the blkio controller's throttle files
(cgroup v1); `unavailable()` says why not. cgroup v2 has io.max only on
non-root groups (the broker would have to be moved into one): not done."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

BLKIO = Path("/sys/fs/cgroup/blkio")
THROTTLES = ("blkio.throttle.write_iops_device", "blkio.throttle.write_bps_device")
DISK_KINDS = ("slow-disk",)
#: The slow disk: writes a second and bytes a second (a busy spinning disk).
WRITE_IOPS = 20
WRITE_BPS = 1 << 20


def _run(*args: str) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def unavailable() -> str | None:
    """Why slow disks cannot be made here; None if they can."""
    if os.geteuid() != 0:
        return "loop devices and block-layer throttling need root"
    for tool in ("losetup", "mkfs.ext4", "mount", "umount"):
        if shutil.which(tool) is None:
            return f"no `{tool}`"
    missing = [name for name in THROTTLES if not (BLKIO / name).exists()]
    if missing:
        return (f"no cgroup v1 blkio throttling ({BLKIO}/{missing[0]}; cgroup v2's io.max "
                "is not on the root group)")
    return None


@dataclass
class Disk:
    image: Path
    device: str  # /dev/loopN
    number: str  # major:minor
    mountpoint: Path


@dataclass
class SlowDisks:
    directory: Path
    size_mib: int = 4096
    #: Keep the image files on close (a kept run's data: `mount -o loop`).
    keep: bool = False
    disks: dict[str, Disk] = field(default_factory=dict)
    slowed: set[str] = field(default_factory=set)

    def mount(self, name: str, path: Path) -> None:
        """A fresh, empty ext4 file system of its own at `path` (made if need be)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        image = self.directory / f"{name}.img"
        with open(image, "wb") as f:
            f.truncate(self.size_mib << 20)  # sparse: costs only what is written
        device = _run("losetup", "--find", "--show", str(image)).strip()
        rdev = os.stat(device).st_rdev
        disk = Disk(image, device, f"{os.major(rdev)}:{os.minor(rdev)}", path)
        self.disks[name] = disk
        self._throttle(disk, 0, 0)  # a limit another run left on a reused device
        _run("mkfs.ext4", "-q", "-F", device)
        path.mkdir(parents=True, exist_ok=True)
        _run("mount", device, str(path))
        # A log dir holds partitions only: Kafka refuses a directory it cannot parse.
        (path / "lost+found").rmdir()

    def _throttle(self, disk: Disk, iops: int, bps: int) -> None:
        for name, value in zip(THROTTLES, (iops, bps), strict=True):
            (BLKIO / name).write_text(f"{disk.number} {value}\n")

    def slow(self, name: str, iops: int = WRITE_IOPS, bps: int = WRITE_BPS) -> None:
        self._throttle(self.disks[name], iops, bps)
        self.slowed.add(name)

    def limits(self, name: str) -> list[str]:
        """The throttle lines naming `name`'s device (tests)."""
        number = self.disks[name].number
        return [line for file in THROTTLES for line in (BLKIO / file).read_text().splitlines()
                if line.startswith(f"{number} ")]

    def heal(self) -> None:
        for name in sorted(self.slowed):
            self._throttle(self.disks[name], 0, 0)
        self.slowed.clear()

    def close(self) -> None:
        """Unthrottle, unmount and detach everything (the brokers stopped first)."""
        self.heal()
        for disk in self.disks.values():
            try:
                _run("umount", str(disk.mountpoint))
            except RuntimeError:
                _run("umount", "-l", str(disk.mountpoint))  # a process still in it
            _run("losetup", "-d", disk.device)
            if not self.keep:
                disk.image.unlink(missing_ok=True)
        self.disks.clear()

    def __enter__(self) -> SlowDisks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
