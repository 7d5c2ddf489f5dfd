"""Cleaning throughput on this machine; skipped unless STROM_CLEANER_BENCH=1.

    STROM_CLEANER_BENCH=1 .venv/bin/pytest tests/storage/test_cleaner_bench.py -q -s

Builds a log of MB megabytes (env STROM_CLEANER_BENCH_MB, default 64) of
100-record batches (keys from 50,000, ~90-byte JSON-ish values, one codec per run),
rolls it and cleans it once, printing MiB/s of log read (both passes).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from storage_helpers import T0
from test_cleaner_helpers import clean, open_compacted

from strom.clock import ManualClock
from strom.protocol.records import Compression, RecordSpec, build_batch, read_batch_header

pytestmark = pytest.mark.skipif(os.environ.get("STROM_CLEANER_BENCH") != "1",
                                reason="benchmark: set STROM_CLEANER_BENCH=1")


@pytest.mark.parametrize("codec", [Compression.NONE, Compression.LZ4])
def test_cleaning_throughput(tmp_path: Path, codec: Compression) -> None:
    megabytes = int(os.environ.get("STROM_CLEANER_BENCH_MB", "64"))
    rng = random.Random(7)
    clock = ManualClock(T0)
    log = open_compacted(tmp_path / "bench-0", clock, segment_bytes=64 << 20,
                         index_interval_bytes=4096, segment_index_bytes=10 << 20)
    while log.size_in_bytes < megabytes << 20:
        specs = [RecordSpec(key=b"customer-%08d" % rng.randrange(50_000),
                            value=b'{"street": "%d Main St", "city": "Springfield", "zip": '
                                  b'"%05d", "v": %d}' % (rng.randrange(9999),
                                                         rng.randrange(99999), i),
                            timestamp=T0) for i in range(100)]
        buf = bytearray(build_batch(specs, compression=codec))
        header = read_batch_header(buf)
        log.append_as_leader(memoryview(buf), header, leader_epoch=0, max_timestamp=T0,
                             offset_delta_of_max_timestamp=0, now_ms=T0)
    log.roll()
    size = log.size_in_bytes
    start = time.perf_counter()
    result = clean(log, clock, memory=128 << 20)
    elapsed = time.perf_counter() - start
    assert result is not None
    stats = result.stats
    mib = 1 << 20
    print(f"\n{codec.name}: {size / mib:.0f} MiB log, {stats.records_read} records: "
          f"{elapsed:.1f} s, {size / mib / elapsed:.1f} MiB/s of log cleaned "
          f"(map {stats.map_bytes_read / mib / (stats.map_done - stats.started):.1f} MiB/s, "
          f"copy {stats.bytes_read / mib / (stats.finished - stats.map_done):.1f} MiB/s); "
          f"{log.size_in_bytes / mib:.1f} MiB left")
