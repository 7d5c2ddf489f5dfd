from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from strom.storage import checkpoints, files
from strom.storage.checkpoints import CheckpointError, MetaProperties


def test_offset_checkpoint_round_trip_and_format(tmp_path: Path) -> None:
    path = tmp_path / files.RECOVERY_POINT_CHECKPOINT
    assert checkpoints.read_offset_checkpoint(path) == {}
    entries = {("orders", 0): 1500, ("orders", 1): 1433, ("my-topic.x", 12): 0}
    checkpoints.write_offset_checkpoint(path, entries)
    assert path.read_text() == "0\n3\norders 0 1500\norders 1 1433\nmy-topic.x 12 0\n"
    assert checkpoints.read_offset_checkpoint(path) == entries
    checkpoints.write_offset_checkpoint(path, {})
    assert path.read_text() == "0\n0\n"
    assert checkpoints.read_offset_checkpoint(path) == {}


@pytest.mark.parametrize(
    "text", ["", "1\n0\n", "0\n2\nt 0 5\n", "0\n1\nt 0\n", "0\n1\nt x 5\n", "0\nx\n"]
)
def test_offset_checkpoint_malformed(tmp_path: Path, text: str) -> None:
    path = tmp_path / "cp"
    path.write_text(text)
    with pytest.raises(CheckpointError):
        checkpoints.read_offset_checkpoint(path)


def test_atomic_write_survives_a_crash_before_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / files.LOG_START_OFFSET_CHECKPOINT
    checkpoints.write_offset_checkpoint(path, {("t", 0): 1})

    def crash(*args: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        checkpoints.write_offset_checkpoint(path, {("t", 0): 2})
    monkeypatch.undo()
    assert checkpoints.read_offset_checkpoint(path) == {("t", 0): 1}  # old contents intact
    assert (tmp_path / (path.name + ".tmp")).exists()
    checkpoints.write_offset_checkpoint(path, {("t", 0): 3})
    assert checkpoints.read_offset_checkpoint(path) == {("t", 0): 3}
    assert not (tmp_path / (path.name + ".tmp")).exists()


def test_atomic_write_fsyncs_file_then_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file")
        real_fsync(fd)

    def replace(src: object, dst: object) -> None:
        events.append("rename")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    files.write_atomically(tmp_path / "f", b"data")
    assert events == ["fsync-file", "rename", "fsync-dir"]
    assert (tmp_path / "f").read_bytes() == b"data"


def test_kafka_uuid_encoding() -> None:
    assert checkpoints.encode_uuid(uuid.UUID(int=1)) == "AAAAAAAAAAAAAAAAAAAAAQ"
    assert checkpoints.encode_uuid(uuid.UUID(int=0)) == "AAAAAAAAAAAAAAAAAAAAAA"
    value = uuid.UUID("f4b1f0a0-45d3-4d1c-9b37-5b4cc1f59b1e")
    text = checkpoints.encode_uuid(value)
    assert len(text) == 22 and "=" not in text
    assert checkpoints.decode_uuid(text) == value
    for _ in range(200):
        assert not checkpoints.encode_uuid(checkpoints.random_kafka_uuid()).startswith("-")


def test_partition_metadata(tmp_path: Path) -> None:
    path = tmp_path / files.PARTITION_METADATA
    assert checkpoints.read_partition_metadata(path) is None
    checkpoints.write_partition_metadata(path, uuid.UUID(int=1))
    assert path.read_text() == "version: 0\ntopic_id: AAAAAAAAAAAAAAAAAAAAAQ"
    assert checkpoints.read_partition_metadata(path) == uuid.UUID(int=1)
    path.write_text("version: 1\ntopic_id: AAAAAAAAAAAAAAAAAAAAAQ")
    with pytest.raises(CheckpointError):
        checkpoints.read_partition_metadata(path)


def test_meta_properties_round_trip(tmp_path: Path) -> None:
    path = tmp_path / files.META_PROPERTIES
    assert checkpoints.read_meta_properties(path) is None
    meta = MetaProperties(3, "MkU3OEVBNTcwNTJENDM2Qk", uuid.UUID(int=12345))
    checkpoints.write_meta_properties(path, meta)
    text = path.read_text()
    assert "node.id=3\n" in text and "version=1\n" in text
    assert "cluster.id=MkU3OEVBNTcwNTJENDM2Qk\n" in text
    assert checkpoints.read_meta_properties(path) == meta


def test_meta_properties_as_kafka_writes_it(tmp_path: Path) -> None:
    path = tmp_path / files.META_PROPERTIES
    path.write_text(
        "#\n#Tue Nov 25 10:00:00 UTC 2025\nnode.id=1\ndirectory.id=AAAAAAAAAAAAAAAAAAAAAQ\n"
        "version=1\ncluster.id=q1Sh-9_ISia_zwGINzRvyQ\n"
    )
    meta = checkpoints.read_meta_properties(path)
    assert meta == MetaProperties(1, "q1Sh-9_ISia_zwGINzRvyQ", uuid.UUID(int=1))
    path.write_text("version=0\nbroker.id=1\ncluster.id=x\n")
    with pytest.raises(CheckpointError):
        checkpoints.read_meta_properties(path)


def test_clean_shutdown_marker(tmp_path: Path) -> None:
    assert not checkpoints.consume_clean_shutdown_marker(tmp_path)
    checkpoints.write_clean_shutdown_marker(tmp_path)
    assert (tmp_path / ".kafka_cleanshutdown").read_text() == (
        '{"version":"0","broker_epoch":"-1"}'
    )
    assert checkpoints.consume_clean_shutdown_marker(tmp_path)
    assert not (tmp_path / ".kafka_cleanshutdown").exists()


def test_file_names() -> None:
    assert files.offset_prefix(42) == "00000000000000000042"
    assert files.parse_offset_file_name("00000000000000000042.log") == (42, ".log", "")
    assert files.parse_offset_file_name("00000000000000000042.index.swap") == (
        42, ".index", ".swap"
    )
    assert files.parse_offset_file_name("42.log") is None
    assert files.parse_partition_dir_name("my-topic-12") == ("my-topic", 12)
    assert files.parse_partition_dir_name("__consumer_offsets-0") == ("__consumer_offsets", 0)
    for bad in ("topic", "topic-", "-3", "topic-x", "a b-1", "t-1.abc-delete"):
        assert files.parse_partition_dir_name(bad) is None
    name = files.delete_dir_name("t" * 249, 7)
    assert name.endswith("-delete") and len(name) <= 255 and "-7." in name
    assert files.is_delete_dir(files.delete_dir_name("orders", 0))


def test_offset_checkpoint_salvage_keeps_the_good_lines(tmp_path: Path) -> None:
    """One damaged line (here a topic name with a newline, as 0098471 wrote)
    loses that line only, and says so naming the file and the line."""
    path = tmp_path / files.LOG_START_OFFSET_CHECKPOINT
    path.write_bytes(b"0\n3\na 0 1000\nevil\n 0 5\nb 1 7\n")
    entries, problem = checkpoints.salvage_offset_checkpoint(path)
    assert entries == {("a", 0): 1000, ("b", 1): 7}
    assert problem is not None and str(path) in problem and "line 4 'evil'" in problem
    with pytest.raises(CheckpointError, match="malformed"):
        checkpoints.read_offset_checkpoint(path)
    path.write_bytes(b"0\n1\n\xff 0 1\n")
    assert checkpoints.salvage_offset_checkpoint(path)[0] == {}
    path.write_bytes(b"0\n1\nt 0 1\n")
    assert checkpoints.salvage_offset_checkpoint(path) == ({("t", 0): 1}, None)
