"""The fuzzer's bounded slice (issue 13): 20,000 seeded frames against a
`strom serve` subprocess. `make fuzz` runs a million."""

from __future__ import annotations

from pathlib import Path

from tests.fuzz.capture import load_frames
from tests.fuzz.frames import KINDS, FrameSource, advertised
from tests.fuzz.harness import fuzz


def test_frames_are_deterministic_and_cover_every_advertised_api() -> None:
    captured = load_frames()
    source, replay = FrameSource(7, captured), FrameSource(7, captured)
    # Enough draws that every advertised API (about 60 now) is reached.
    first = [source.next(i) for i in range(4000)]
    again = [replay.next(i) for i in range(4000)]
    assert first == again
    assert {kind for kind, _, _ in first} == set(KINDS)
    assert len(captured) >= 50
    # Schema-drawn requests reach every advertised API.
    keys = {api_key for kind, api_key, _ in first if kind == "schema"}
    assert keys == {api_key for api_key, _ in advertised()}


def test_fuzz_slice(tmp_path: Path) -> None:
    report = fuzz(frames=20_000, connections=32, seed=13, work_dir=tmp_path)
    print(report.format())
    assert report.stats.frames_sent == 20_000
    assert report.crashes == 0, report.format()
    assert report.tracebacks == 0 and not report.error_lines, report.format()
    assert report.records_intact, report.records_detail
    assert report.stats.out_of_order == 0
