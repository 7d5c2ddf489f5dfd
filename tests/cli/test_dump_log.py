"""`strom dump-log` on a real data directory written by a stopped broker,
and on damaged copies of it."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path
from typing import Any

import pytest

from strom.testing import EmbeddedBroker
from tests.cli.conftest import Result, ok, run_cli
from tests.cli.terminal import run_on_terminal

TOPIC = "dumped"


@pytest.fixture
def partition_dir(fresh_broker: EmbeddedBroker) -> Path:
    """A partition with several segments, compressed and idempotent batches,
    headers and a tombstone, written by a broker that is then stopped."""
    b = ["-b", fresh_broker.bootstrap]
    ok(run_cli("topics", "create", TOPIC, "--config", "segment.bytes=700",
               "--config", "index.interval.bytes=100", *b))
    for n, codec in enumerate(["none", "gzip", "zstd", "lz4", "snappy", "none"]):
        lines = b"".join(b"k%d-%d:value %d of batch %d\n" % (n, i, i, n) for i in range(6))
        ok(run_cli("produce", TOPIC, "-K", ":", "-z", codec, "-H", f"batch={n}", *b,
                   stdin=lines))
    ok(run_cli("produce", TOPIC, "-K", ":", "--null-marker", "DEL", *b, stdin=b"k0-0:DEL\n"))
    ok(run_cli("produce", TOPIC, "-X", "enable.idempotence=true", *b, stdin=b"idem\n"))
    fresh_broker.stop()
    return fresh_broker.data_dir / f"{TOPIC}-0"


def dump(*args: str | Path) -> Result:
    return run_cli("dump-log", *(str(a) for a in args))


def files_of(result: Result) -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = result.json()["files"]
    return files


def test_dump_a_clean_partition(partition_dir: Path) -> None:
    logs = sorted(partition_dir.glob("*.log"))
    assert len(logs) > 1, "expected the small segment.bytes to roll segments"
    result = ok(dump(partition_dir, "--output", "json"))
    assert result.json()["ok"] is True and result.json()["problems"] == 0
    files = files_of(result)
    batches = [b for f in files if f["type"] == "log" for b in f["batches"]]
    assert batches[0]["base_offset"] == 0
    for before, after in zip(batches, batches[1:], strict=False):
        assert after["base_offset"] == before["last_offset"] + 1
    assert sum(b["count"] for b in batches) == 6 * 6 + 2
    assert {b["compression"] for b in batches} == {"none", "gzip", "zstd", "lz4", "snappy"}
    assert all(b["crc_valid"] and b["magic"] == 2 for b in batches)
    assert batches[-1]["producer_id"] >= 0  # the idempotent one
    indexes = [f for f in files if f["type"] == "index"]
    assert any(f["entries"] for f in indexes), "expected index entries"
    for f in indexes:
        log = next(g for g in files if g["type"] == "log"
                   and g["base_offset"] == f["base_offset"])
        starts = {b["position"]: b["last_offset"] for b in log["batches"]}
        assert all(starts[e["position"]] == e["offset"] for e in f["entries"])


def test_print_data(partition_dir: Path) -> None:
    result = ok(dump(partition_dir, "--print-data", "--output", "json"))
    records = [r for f in files_of(result) if f["type"] == "log"
               for b in f["batches"] for r in b["records"]]
    assert [r["offset"] for r in records] == list(range(38))
    assert records[0]["key"] == "k0-0" and records[0]["value"] == "value 0 of batch 0"
    assert records[0]["headers"] == [{"key": "batch", "value": "0"}]
    assert records[36]["key"] == "k0-0" and records[36]["value"] is None  # tombstone
    assert records[37]["value"] == "idem" and records[37]["sequence"] == 0

    first_log = sorted(partition_dir.glob("*.log"))[0]
    text = ok(dump(first_log, "--print-data")).stdout
    assert text.startswith(f"Dumping {first_log}\nLog starting offset: 0\nbaseOffset: 0 ")
    assert "| offset: 0 CreateTime: " in text
    assert "headerKeys: [batch] key: k0-0 payload: value 0 of batch 0" in text
    assert text.rstrip().endswith("no problems.")


def test_check_only_prints_a_summary(partition_dir: Path) -> None:
    result = ok(dump("--check", partition_dir.parent))
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Checked ")


def _damaged(partition_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "damaged" / partition_dir.name
    shutil.copytree(partition_dir, copy)
    return copy


def _batches(path: Path) -> list[dict[str, Any]]:
    batches: list[dict[str, Any]] = files_of(ok(dump(path, "--output", "json")))[0]["batches"]
    return batches


def _flip(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0xFF
    path.write_bytes(bytes(data))


def _problems(result: Result) -> list[str]:
    assert result.code == 1, result.stdout
    return [p for f in files_of(result) for p in f["problems"]]


def test_crc_mismatch(partition_dir: Path, tmp_path: Path) -> None:
    copy = _damaged(partition_dir, tmp_path)
    log = sorted(copy.glob("*.log"))[0]
    first = _batches(log)[0]
    _flip(log, first["position"] + first["size"] - 3)  # inside the records
    problems = _problems(dump(log, "--output", "json"))
    assert any("CRC mismatch" in p for p in problems), problems
    text = dump(log)
    assert text.code == 1
    assert "problem: batch at position 0 (offsets 0-5): CRC mismatch" in text.stdout
    assert "problems in 1 of 1 file" in text.stdout


def test_torn_tail_and_bad_magic(partition_dir: Path, tmp_path: Path) -> None:
    copy = _damaged(partition_dir, tmp_path)
    log = sorted(copy.glob("*.log"))[-1]
    log.write_bytes(log.read_bytes()[:-5])
    assert any("torn write" in p for p in _problems(dump(log, "--output", "json")))

    other = sorted(copy.glob("*.log"))[0]
    second = _batches(other)[1]
    _flip(other, second["position"] + 16)  # the magic byte
    problems = _problems(dump(other, "--output", "json"))
    assert any("magic" in p and "cannot be read" in p for p in problems), problems


def test_offsets_must_increase(partition_dir: Path, tmp_path: Path) -> None:
    copy = _damaged(partition_dir, tmp_path)
    log = sorted(copy.glob("*.log"))[0]
    second = _batches(log)[1]
    data = bytearray(log.read_bytes())
    struct.pack_into(">q", data, second["position"], 0)  # base offset: outside the CRC
    log.write_bytes(bytes(data))
    problems = _problems(dump(log, "--output", "json"))
    assert any("offsets do not increase" in p for p in problems), problems


def test_index_entry_off_a_batch_boundary(partition_dir: Path, tmp_path: Path) -> None:
    copy = _damaged(partition_dir, tmp_path)
    index = next(p for p in sorted(copy.glob("*.index")) if p.stat().st_size >= 8)
    data = bytearray(index.read_bytes())
    relative, position = struct.unpack_from(">ii", data, 0)
    struct.pack_into(">ii", data, 0, relative, position + 1)
    index.write_bytes(bytes(data))
    problems = _problems(dump(index, "--output", "json"))
    assert any("is not the start of a batch" in p for p in problems), problems

    struct.pack_into(">ii", data, 0, relative + 1, position)
    index.write_bytes(bytes(data))
    problems = _problems(dump(index, "--output", "json"))
    assert any("has last offset" in p for p in problems), problems


def test_time_index_mismatch(partition_dir: Path, tmp_path: Path) -> None:
    copy = _damaged(partition_dir, tmp_path)
    time_index = next(p for p in sorted(copy.glob("*.timeindex")) if p.stat().st_size >= 12)
    data = bytearray(time_index.read_bytes())
    timestamp, relative = struct.unpack_from(">qi", data, 0)
    struct.pack_into(">qi", data, 0, timestamp - 1, relative)
    time_index.write_bytes(bytes(data) + b"\x01\x02")  # and a partial entry
    problems = _problems(dump(time_index, "--output", "json"))
    assert any("has max timestamp" in p for p in problems), problems
    assert any("not a multiple of the entry size 12" in p for p in problems), problems


def test_index_without_its_log_is_dumped_unchecked(partition_dir: Path,
                                                   tmp_path: Path) -> None:
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    index = sorted(partition_dir.glob("*.index"))[0]
    shutil.copy(index, lonely / index.name)
    result = ok(dump(lonely / index.name, "--output", "json"))
    assert any("no matching .log" in n for n in files_of(result)[0]["notes"])


def test_bad_paths(partition_dir: Path, tmp_path: Path) -> None:
    missing = dump(tmp_path / "nope.log")
    assert missing.code == 2 and "no such file or directory" in missing.stderr
    not_segment = dump(partition_dir / "partition.metadata")
    assert not_segment.code == 2 and "not a segment file" in not_segment.stderr
    (tmp_path / "empty").mkdir()
    nothing = dump(tmp_path / "empty")
    assert nothing.code == 2 and "no segment files" in nothing.stderr


def test_progress_on_stderr_only_when_asked_or_on_a_terminal(partition_dir: Path) -> None:
    quiet = ok(dump("--check", partition_dir))
    assert quiet.stderr == ""  # stderr is not a terminal here
    shown = ok(dump("--check", "--progress", partition_dir))
    assert shown.stdout.strip().startswith("Checked ")
    assert "\rchecking [" in shown.stderr and " bytes " in shown.stderr, shown.stderr
    json_run = ok(dump("--output", "json", "--progress", partition_dir))
    assert json_run.json()["ok"] is True  # stdout stays pure JSON
    assert "\rdumping [" in json_run.stderr


def _stderr_on_a_terminal(args: list[str]) -> tuple[bytes, bytes]:
    """Run strom with stderr on a pseudo-terminal: (stdout, what the terminal got)."""
    _, out, terminal = run_on_terminal(args, "stderr")
    return out, terminal


def test_progress_by_default_on_a_terminal_when_the_dump_goes_elsewhere(
        partition_dir: Path) -> None:
    out, terminal = _stderr_on_a_terminal(["dump-log", "--check", str(partition_dir)])
    assert out.startswith(b"Checked ")
    assert b"\rchecking [" in terminal
    # erased at the end: the terminal is left with a blank line to write on
    assert terminal.endswith(b"\r")
