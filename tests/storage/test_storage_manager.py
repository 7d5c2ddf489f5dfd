from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from storage_helpers import T0, append, crash, make_batch, read_all

from strom.clock import ManualClock
from strom.errors import KafkaStorageError
from strom.storage import checkpoints, files
from strom.storage.log import LogConfig
from strom.storage.manager import (
    InconsistentClusterIdError,
    LogManager,
    NewLog,
    open_new_logs,
    remove_log_dirs,
)

CONFIG = LogConfig(segment_bytes=len(make_batch([b"x"])) * 3)


def manager(dirs: list[Path], *, cluster_id: str | None = None, node_id: int = 1) -> LogManager:
    return LogManager(dirs, clock=ManualClock(T0), node_id=node_id, cluster_id=cluster_id)


def config_for(topic: str) -> LogConfig:
    return CONFIG


def test_meta_properties_created_and_checked(tmp_path: Path) -> None:
    dirs = [tmp_path / "a", tmp_path / "b"]
    m = manager(dirs)
    cluster_id = m.cluster_id
    assert len(cluster_id) == 22
    metas = [checkpoints.read_meta_properties(d / files.META_PROPERTIES) for d in dirs]
    assert all(meta is not None and meta.cluster_id == cluster_id for meta in metas)
    assert metas[0] is not None and metas[1] is not None
    assert metas[0].directory_id != metas[1].directory_id
    assert manager(dirs).cluster_id == cluster_id
    assert manager(dirs, cluster_id=cluster_id).cluster_id == cluster_id
    with pytest.raises(InconsistentClusterIdError, match="cluster.id"):
        manager(dirs, cluster_id="another-cluster-id")
    with pytest.raises(InconsistentClusterIdError, match="node.id"):
        manager(dirs, node_id=2)
    other = manager([tmp_path / "c"], cluster_id="other")
    assert other.cluster_id == "other"
    with pytest.raises(InconsistentClusterIdError):
        manager([tmp_path / "a", tmp_path / "c"])


def test_configured_cluster_id_is_written(tmp_path: Path) -> None:
    m = manager([tmp_path], cluster_id="MkU3OEVBNTcwNTJENDM2Qk")
    assert m.cluster_id == "MkU3OEVBNTcwNTJENDM2Qk"
    meta = checkpoints.read_meta_properties(tmp_path / files.META_PROPERTIES)
    assert meta is not None and meta.cluster_id == "MkU3OEVBNTcwNTJENDM2Qk"


def test_create_spreads_logs_over_directories(tmp_path: Path) -> None:
    dirs = [tmp_path / "a", tmp_path / "b"]
    m = manager(dirs)
    logs = [m.create_log("t", p, CONFIG, uuid.uuid4()) for p in range(4)]
    assert sorted(log.directory.parent.name for log in logs) == ["a", "a", "b", "b"]
    assert m.get("t", 2) is logs[2]
    assert m.get("t", 9) is None
    assert m.create_log("t", 2, CONFIG, logs[2].topic_id or uuid.uuid4()) is logs[2]
    with pytest.raises(KafkaStorageError):
        m.create_log("t", 2, CONFIG, uuid.uuid4())


def test_clean_restart(tmp_path: Path) -> None:
    topic_id = uuid.uuid4()
    m = manager([tmp_path])
    log = m.create_log("orders", 0, CONFIG, topic_id)
    for i in range(7):
        append(log, [b"%d" % i])
    log.advance_log_start_offset(4)
    m.shutdown({("orders", 0): 7})
    assert (tmp_path / files.CLEAN_SHUTDOWN_MARKER).exists()
    assert (tmp_path / files.RECOVERY_POINT_CHECKPOINT).read_text() == "0\n1\norders 0 7\n"
    assert (tmp_path / files.REPLICATION_OFFSET_CHECKPOINT).read_text() == "0\n1\norders 0 7\n"
    assert (tmp_path / files.LOG_START_OFFSET_CHECKPOINT).read_text() == "0\n1\norders 0 4\n"

    m = manager([tmp_path])
    assert m.high_watermarks == {("orders", 0): 7}
    logs = m.load_logs(config_for)
    assert not (tmp_path / files.CLEAN_SHUTDOWN_MARKER).exists()
    log = logs[("orders", 0)]
    assert (log.log_start_offset, log.log_end_offset, log.recovery_point) == (4, 7, 7)
    assert log.topic_id == topic_id
    assert [r.value for r in read_all(log)] == [b"4", b"5", b"6"]
    m.shutdown({})


def test_unclean_restart_recovers_from_checkpointed_recovery_point(tmp_path: Path) -> None:
    m = manager([tmp_path])
    log = m.create_log("t", 0, CONFIG, uuid.uuid4())
    for _ in range(4):
        append(log)
    log.flush()
    m.checkpoint({("t", 0): 4})
    for _ in range(4):
        append(log)
    crash(log)  # no shutdown: no marker
    last = sorted(log.directory.glob("*.log"))[-1]
    os.truncate(last, last.stat().st_size - 5)  # torn last batch
    m = manager([tmp_path])
    log = m.load_logs(config_for)[("t", 0)]
    assert log.log_end_offset == 7
    assert log.recovery_point == 4
    m.shutdown({})


def test_delete_log(tmp_path: Path) -> None:
    m = manager([tmp_path])
    keep = m.create_log("keep", 0, CONFIG, uuid.uuid4())
    gone = m.create_log("gone", 0, CONFIG, uuid.uuid4())
    append(keep)
    append(gone)
    m.checkpoint({("keep", 0): 1, ("gone", 0): 1})
    m.delete_log("gone", 0)
    assert m.get("gone", 0) is None
    assert not gone.directory.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("gone")]
    for name in (files.RECOVERY_POINT_CHECKPOINT, files.LOG_START_OFFSET_CHECKPOINT,
                 files.REPLICATION_OFFSET_CHECKPOINT):
        assert "gone" not in (tmp_path / name).read_text()
    m.delete_log("gone", 0)  # already gone: nothing
    # A re-created topic of the same name starts from scratch.
    again = m.create_log("gone", 0, CONFIG, uuid.uuid4())
    assert again.log_end_offset == 0
    m.shutdown({})


def test_a_batch_of_new_logs_is_opened_apart_then_adopted(tmp_path: Path) -> None:
    # What a worker thread does for a big CreateTopics (broker/log_jobs.py).
    dirs = [tmp_path / "a", tmp_path / "b"]
    m = manager(dirs)
    topic_id = uuid.uuid4()
    keys = [("big", p) for p in range(40)]
    where = m.new_log_dirs(keys)
    assert sorted(d.name for d in where.values()) == ["a"] * 20 + ["b"] * 20
    specs = [NewLog(key, where[key], CONFIG, topic_id) for key in keys]
    logs, pending = open_new_logs(specs, ManualClock(T0))
    for spec, log in zip(specs, logs, strict=True):
        assert not isinstance(log, OSError)
        assert m.get(*spec.key) is None  # nobody sees it before it is adopted
        m.adopt_log(spec.key, log, spec.data_dir)
        # Takes appends now; no directory before its first write.
        assert not log.directory.exists()
    assert len(pending) == 0
    appended = m.get("big", 39) or pytest.fail("not adopted")
    append(appended)
    assert appended.directory.is_dir()
    assert not (m.get("big", 0) or pytest.fail()).directory.exists()
    m.shutdown({})
    assert checkpoints.read_partition_metadata(
        appended.directory / files.PARTITION_METADATA) == topic_id
    assert sorted(p.name for d in dirs for p in d.iterdir()
                  if p.name.startswith("big")) == ["big-39"]
    again = manager(dirs)
    loaded = again.load_logs(config_for)
    # The others come back from the cluster metadata (the broker creates them).
    assert sorted(loaded) == [("big", 39)]
    assert loaded[("big", 39)].log_end_offset == 1
    assert loaded[("big", 39)].topic_id == topic_id
    again.shutdown({})


def test_a_crash_before_partition_metadata_is_written_keeps_the_records(
        tmp_path: Path) -> None:
    # A new log takes appends before its partition.metadata is written (its
    # directory is made by the first append, the file by the first flush):
    # a crash in between.
    m = manager([tmp_path])
    topic_id = uuid.uuid4()
    (spec,) = [NewLog(("t", 0), tmp_path, CONFIG, topic_id)]
    (log,), _never_synced = open_new_logs([spec], ManualClock(T0))
    assert not isinstance(log, OSError)
    m.adopt_log(spec.key, log, tmp_path)
    append(log, [b"a", b"b"])
    crash(log)
    again = manager([tmp_path])
    loaded = again.load_logs(config_for)[("t", 0)]
    assert loaded.topic_id is None and loaded.log_end_offset == 2
    assert again.create_log("t", 0, CONFIG, topic_id) is loaded  # from the cluster metadata
    assert checkpoints.read_partition_metadata(
        loaded.directory / files.PARTITION_METADATA) == topic_id
    assert [r.value for r in read_all(loaded)] == [b"a", b"b"]
    again.shutdown({})


def test_a_new_log_never_writes_into_a_directory_in_its_way(tmp_path: Path) -> None:
    # A batch's new logs look at no directory (the broker loaded every one
    # at start). One found in the way at the first write (its removal failed,
    # or an operator put it there) is refused, not appended into; an empty
    # one is used.
    old_id, new_id = uuid.uuid4(), uuid.uuid4()
    m = manager([tmp_path])
    log = m.create_log("t", 0, CONFIG, old_id)
    append(log, [b"kept"])
    m.shutdown({})
    (tmp_path / "t-1").mkdir()
    specs = [NewLog(("t", 0), tmp_path, CONFIG, new_id),
             NewLog(("t", 1), tmp_path, CONFIG, new_id)]
    (in_the_way, empty), _ = open_new_logs(specs, ManualClock(T0))
    assert not isinstance(in_the_way, OSError) and not isinstance(empty, OSError)
    with pytest.raises(KafkaStorageError, match="in the way"):
        append(in_the_way, [b"new"])
    assert in_the_way.log_end_offset == 0
    append(empty, [b"new"])
    for log in (in_the_way, empty):
        log.close(flush=True)
    again = manager([tmp_path])
    loaded = again.load_logs(config_for)
    assert [r.value for r in read_all(loaded[("t", 0)])] == [b"kept"]
    assert loaded[("t", 0)].topic_id == old_id
    assert [r.value for r in read_all(loaded[("t", 1)])] == [b"new"]
    assert loaded[("t", 1)].topic_id == new_id
    again.shutdown({})


def test_half_made_log_directories_load_and_take_their_topic_id(tmp_path: Path) -> None:
    # A crash while a batch of new logs was being made: an empty directory,
    # one with only the temp partition.metadata. Both load as empty logs, and
    # create_log (from the cluster metadata) writes their partition.metadata.
    (tmp_path / "t-0").mkdir()
    (tmp_path / "t-1").mkdir()
    (tmp_path / "t-1" / (files.PARTITION_METADATA + files.TMP_SUFFIX)).write_bytes(b"vers")
    m = manager([tmp_path])
    loaded = m.load_logs(config_for)
    assert sorted(loaded) == [("t", 0), ("t", 1)] and not m.offline
    topic_id = uuid.uuid4()
    for p in (0, 1):
        log = m.create_log("t", p, CONFIG, topic_id)
        assert log is loaded[("t", p)] and log.topic_id == topic_id
        assert checkpoints.read_partition_metadata(
            log.directory / files.PARTITION_METADATA) == topic_id
        append(log)
    m.shutdown({})


def test_delete_logs_rewrites_the_checkpoints_once(tmp_path: Path) -> None:
    m = manager([tmp_path])
    keep = m.create_log("keep", 0, CONFIG, uuid.uuid4())
    for p in range(30):
        append(m.create_log("gone", p, CONFIG, uuid.uuid4()))
    append(keep)
    m.checkpoint({})
    checkpoint = tmp_path / files.RECOVERY_POINT_CHECKPOINT
    written = checkpoint.stat().st_ino
    doomed = m.detach_logs([("gone", p) for p in range(30)])
    assert m.get("gone", 0) is None and m.get("keep", 0) is keep
    for log in doomed:
        log.close()
    assert remove_log_dirs(doomed) == []  # what a worker thread does
    m.write_checkpoints_of({tmp_path})
    assert checkpoint.stat().st_ino != written  # rewritten (a new file renamed in)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("gone")] == []
    assert "gone" not in checkpoint.read_text()
    m.shutdown({})


def test_load_finishes_deletions_and_ignores_strays(tmp_path: Path) -> None:
    m = manager([tmp_path])
    append(m.create_log("t", 0, CONFIG, uuid.uuid4()))
    m.shutdown({})
    doomed = tmp_path / files.delete_dir_name("old", 3)
    doomed.mkdir()
    (doomed / "00000000000000000000.log").write_bytes(b"junk")
    (tmp_path / "not a partition").mkdir()
    (tmp_path / "stray.txt").write_text("hello")
    m = manager([tmp_path])
    logs = m.load_logs(config_for)
    assert list(logs) == [("t", 0)]
    assert not doomed.exists()
    assert (tmp_path / "stray.txt").exists()
    m.shutdown({})


def test_duplicate_partition_directories(tmp_path: Path) -> None:
    m = manager([tmp_path / "a", tmp_path / "b"])
    m.create_log("t", 0, CONFIG, uuid.uuid4())
    m.shutdown({})
    (tmp_path / "b" / "t-0").mkdir()
    with pytest.raises(KafkaStorageError, match="duplicate"):
        manager([tmp_path / "a", tmp_path / "b"]).load_logs(config_for)


def test_corrupt_checkpoint_falls_back_to_full_recovery(tmp_path: Path) -> None:
    m = manager([tmp_path])
    log = m.create_log("t", 0, CONFIG, uuid.uuid4())
    for _ in range(5):
        append(log)
    m.shutdown({("t", 0): 5})
    (tmp_path / files.RECOVERY_POINT_CHECKPOINT).write_text("garbage")
    (tmp_path / files.CLEAN_SHUTDOWN_MARKER).unlink()
    m = manager([tmp_path])
    log = m.load_logs(config_for)[("t", 0)]
    assert log.recovery_point == 0 and log.log_end_offset == 5
    m.shutdown({})


def test_retention_and_flush_scheduling(tmp_path: Path) -> None:
    m = manager([tmp_path])
    config = LogConfig(segment_bytes=CONFIG.segment_bytes, retention_ms=1000, flush_messages=2)
    log = m.create_log("t", 0, config, uuid.uuid4())
    for i in range(7):
        append(log, [b"x"], [T0 + i])
    assert m.logs_due_for_flush(T0) == [log]
    log.flush()
    assert m.logs_due_for_flush(T0) == []
    assert m.apply_retention(T0 + 1000) == 0
    assert m.apply_retention(T0 + 1003, {("t", 0): 7}) == 1
    assert log.log_start_offset == 3
    assert m.apply_retention(T0 + 10_000, {("t", 0): 5}) == 0  # held by the HW
    assert m.apply_retention(T0 + 10_000, {("t", 0): 6}) == 1  # the active one stays
    assert log.log_start_offset == 6
    m.shutdown({})
