"""Opening a PartitionLog from its directory (Kafka's UnifiedLog.apply with
LogLoader): the directory name gives topic and partition; partition.metadata
(checkpoints.py) is checked against the topic ID; the leader epoch checkpoint
is read; loader.py opens the segments and recovers what a crash left; the
producer state is rebuilt above its snapshot.

A new log is made durable now, or with its batch by `new_logs` (new_logs.py).
A new log of a batch with no preallocation gets no directory here: it waits
for the log's first write (PartitionLog._make_directory). This module owns
only the opening; the log's life after it is log.py's.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path

from strom.clock import Clock
from strom.storage import checkpoints, files, loader
from strom.storage.leader_epoch import LeaderEpochCache
from strom.storage.log import PartitionLog
from strom.storage.log_config import LogConfig
from strom.storage.new_logs import NewLogSync, make_directory, make_new_log_durable

__all__ = ["new_lazy_log", "open_log"]


def open_log(
    directory: Path,
    config: LogConfig,
    *,
    clock: Clock,
    recovery_point: int = 0,
    log_start_offset: int = 0,
    topic_id: uuid.UUID | None = None,
    had_clean_shutdown: bool = False,
    rng: random.Random | None = None,
    new_logs: NewLogSync | None = None,
) -> PartitionLog:
    """Open (and recover) the log in `directory`, creating it if new. A new
    log is made durable now, or with its batch by `new_logs` (new_logs.py).

    With `new_logs` (a batch of new logs: the caller knows `directory`
    does not exist) and no preallocation, nothing is made on disk: the
    directory waits for the log's first write (`_make_directory`)."""
    parsed = files.parse_partition_dir_name(directory.name)
    if parsed is None:
        raise ValueError(f"{directory.name!r} is not a <topic>-<partition> directory name")
    topic, partition = parsed
    lazy = new_logs is not None and not config.preallocate
    if lazy and log_start_offset == 0:
        return new_lazy_log(directory, topic, partition, config, clock=clock,
                            topic_id=topic_id, rng=rng or random.Random())
    is_new = True if lazy else make_directory(directory)
    # A directory this call made is empty: a new log in a batch reads no
    # checkpoint and no producer state from it (each a lookup in a data
    # directory of thousands of entries: a third of a big CreateTopics'
    # log creation), and gets partition.metadata from `new_logs.sync`.
    fresh = is_new and new_logs is not None
    stored_id = None if fresh else checkpoints.check_partition_metadata(
        directory, topic_id, write_missing=not fresh)
    epoch_path = files.child(directory, files.LEADER_EPOCH_CHECKPOINT)
    epoch_cache = LeaderEpochCache(epoch_path) if fresh else LeaderEpochCache.load(epoch_path)
    plog = PartitionLog(
        directory, config, clock=clock, topic=topic, partition=partition,
        topic_id=topic_id or stored_id, epoch_cache=epoch_cache,
        rng=rng or random.Random(), empty=fresh,
    )
    # A batch of new logs creates no segment files before they are used.
    segment_files = plog.log_segments.files
    segment_files.lazy_next = fresh
    loaded = loader.load_log(
        directory,
        empty=fresh,
        open_segment=segment_files.open,
        create_segment=segment_files.create,
        epoch_cache=epoch_cache,
        recovery_point=recovery_point,
        log_start_offset=log_start_offset,
        had_clean_shutdown=had_clean_shutdown or is_new,
    )
    segment_files.lazy_next = False
    plog.log_segments.load(loaded.segments)
    plog.log_start_offset = loaded.log_start_offset
    plog.log_end_offset = loaded.log_end_offset
    plog.recovery_point = loaded.recovery_point
    for segment in loaded.segments:
        segment.index_interval_bytes = config.index_interval_bytes
    if not fresh:
        # Recovery may have cut markers whose aborted transactions were indexed.
        plog.txn_index.truncate(plog.log_end_offset)
        plog.load_producer_state()
    if lazy:
        plog.directory_made = False
    elif is_new:
        make_new_log_durable(new_logs, directory, topic_id, epoch_cache)
    return plog


def new_lazy_log(directory: Path, topic: str, partition: int, config: LogConfig, *,
                 clock: Clock, topic_id: uuid.UUID | None, rng: random.Random) -> PartitionLog:
    """A brand-new log of a batch (`open_log` with `new_logs`, no preallocation)
    for the not yet existing `directory` of `topic`-`partition`: nothing on
    disk, its directory and first segment's files made by its first write.

    What `open_log` would make, built directly: an empty directory has
    nothing for the loader to read or recover, so its one lazy segment at
    offset 0 is made here, as the loader makes it (a third of the ~12 us a
    new log cost went to parsing its directory name and the loader's general
    path; a 1,000-partition CreatePartitions makes 1,000)."""
    epoch_cache = LeaderEpochCache(files.child(directory, files.LEADER_EPOCH_CHECKPOINT))
    plog = PartitionLog(
        directory, config, clock=clock, topic=topic, partition=partition,
        topic_id=topic_id, epoch_cache=epoch_cache, rng=rng, empty=True,
    )
    segment_files = plog.log_segments.files
    segment_files.lazy_next = True
    # Created active (its indexes take entries in memory) with its tail state
    # known (empty): what the loader's make_active would derive again.
    segment = segment_files.create(0)  # (lazy_next is reset by it)
    plog.log_segments.load([segment])
    # Offsets: log start, log end and recovery point are 0, as PartitionLog
    # starts them (the loader returns those for an empty directory).
    plog.directory_made = False
    return plog
