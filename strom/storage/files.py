"""File and directory names of Kafka's on-disk layout, in one place.

    <data dir>/meta.properties
    <data dir>/.kafka_cleanshutdown
    <data dir>/recovery-point-offset-checkpoint
    <data dir>/replication-offset-checkpoint
    <data dir>/log-start-offset-checkpoint
    <data dir>/cleaner-offset-checkpoint                   (log compaction progress)
    <data dir>/<topic>-<partition>/00000000000000000000.log|.index|.timeindex
    <data dir>/<topic>-<partition>/leader-epoch-checkpoint
    <data dir>/<topic>-<partition>/partition.metadata
    <data dir>/<topic>-<partition>.<uuid hex>-delete/      (being deleted)

A segment file name is its base offset, zero-padded to 20 digits
(LogFileUtils.filenamePrefixFromOffset). Leftover suffixes (.cleaned, .swap,
.deleted) are named here but only `loader.py` interprets them.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
TXN_INDEX_SUFFIX = ".txnindex"
SNAPSHOT_SUFFIX = ".snapshot"
CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
DELETED_SUFFIX = ".deleted"
TMP_SUFFIX = ".tmp"

DELETE_DIR_SUFFIX = "-delete"
FUTURE_DIR_SUFFIX = "-future"
STRAY_DIR_SUFFIX = "-stray"

LEADER_EPOCH_CHECKPOINT = "leader-epoch-checkpoint"
PARTITION_METADATA = "partition.metadata"
RECOVERY_POINT_CHECKPOINT = "recovery-point-offset-checkpoint"
REPLICATION_OFFSET_CHECKPOINT = "replication-offset-checkpoint"
LOG_START_OFFSET_CHECKPOINT = "log-start-offset-checkpoint"
CLEANER_OFFSET_CHECKPOINT = "cleaner-offset-checkpoint"
META_PROPERTIES = "meta.properties"
CLEAN_SHUTDOWN_MARKER = ".kafka_cleanshutdown"
#: Locked while a broker uses the data directory (dir_lock.py).
LOCK_FILE = ".lock"

#: Suffixes of the files that make up one segment.
SEGMENT_SUFFIXES = (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX)

# Both are used with fullmatch: "$" would also match before a final "\n".
_OFFSET_NAME = re.compile(r"(\d{20})(\.[a-z]+)(\.[a-z]+)?")
_LEGAL_TOPIC = re.compile(r"[a-zA-Z0-9._-]+")


#: pathlib's `/` parses its argument again (~4 us on this project's machine);
#: a name known to be one component need not be: Path._make_child_relpath
#: (what Path.iterdir uses) does without, where this Python has it. A
#: 1,000-partition CreateTopics builds 5,000 paths for its (lazy) logs.
_CHILD: Callable[[Path, str], Path] | None = getattr(Path, "_make_child_relpath", None)


def child(directory: Path, name: str) -> Path:
    """`directory / name` for a `name` of one path component (no separator)."""
    if _CHILD is not None:
        return _CHILD(directory, name)
    return directory / name


def offset_prefix(offset: int) -> str:
    """The 20-digit, zero-padded file name prefix of a segment."""
    return f"{offset:020d}"


def log_path(directory: Path, base_offset: int) -> Path:
    return child(directory, offset_prefix(base_offset) + LOG_SUFFIX)


def index_path(directory: Path, base_offset: int) -> Path:
    return child(directory, offset_prefix(base_offset) + INDEX_SUFFIX)


def time_index_path(directory: Path, base_offset: int) -> Path:
    return child(directory, offset_prefix(base_offset) + TIME_INDEX_SUFFIX)


def segment_paths(directory: Path, base_offset: int) -> list[Path]:
    prefix = offset_prefix(base_offset)
    return [child(directory, prefix + suffix) for suffix in SEGMENT_SUFFIXES]


def with_extra_suffix(path: Path, extra: str) -> Path:
    """`path` with a leftover suffix appended: 00..42.log -> 00..42.log.cleaned."""
    return path.with_name(path.name + extra)


def compacted_segment_paths(directory: Path, base_offset: int, extra: str) -> list[Path]:
    """The .log, .index and .timeindex of a compaction output segment carrying
    `extra` (CLEANED_SUFFIX, SWAP_SUFFIX or "" once swapped in), .log first:
    the order the swap renames them in (Kafka's changeFileSuffixes)."""
    prefix = offset_prefix(base_offset)
    return [
        directory / (prefix + suffix + extra)
        for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX)
    ]


def parse_offset_file_name(name: str) -> tuple[int, str, str] | None:
    """(base offset, suffix, extra suffix) of "00..42.log.swap", or None."""
    match = _OFFSET_NAME.fullmatch(name)
    if match is None:
        return None
    return int(match.group(1)), match.group(2), match.group(3) or ""


def is_legal_topic_name(name: str) -> bool:
    """Kafka's legal topic characters (the length rules are the controller's)."""
    return _LEGAL_TOPIC.fullmatch(name) is not None


def parse_partition_dir_name(name: str) -> tuple[str, int] | None:
    """(topic, partition) of "<topic>-<partition>", or None if it is not one.

    Like Kafka (UnifiedLog.parseTopicPartitionName) the partition is after the
    last dash, so topic names may contain dashes.
    """
    topic, dash, partition = name.rpartition("-")
    if (not dash or not topic or not (partition.isascii() and partition.isdigit())
            or not is_legal_topic_name(topic)):
        return None
    return topic, int(partition)


def partition_dir_name(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


def delete_dir_name(topic: str, partition: int) -> str:
    """Kafka's LocalLog.logDeleteDirName: <topic>-<p>.<uuid hex>-delete, within 255 bytes."""
    suffix = f"-{partition}.{uuid.uuid4().hex}{DELETE_DIR_SUFFIX}"
    return topic[: 255 - len(suffix)] + suffix


def is_delete_dir(name: str) -> bool:
    return name.endswith(DELETE_DIR_SUFFIX)


def fsync_dir(directory: Path) -> None:
    """Make renames, creations and deletions in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Write temp file, fsync, rename over `path`, fsync the directory.

    After a crash `path` holds either the old or the new contents, never a
    mix; a stray `<path>.tmp` may remain and is overwritten next time.
    """
    tmp = path.with_name(path.name + TMP_SUFFIX)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except OSError:
        # A full disk: give back what the partial temp file holds.
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)
