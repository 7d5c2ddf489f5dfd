"""The C load generator (bench/rdkgen_src/, over librdkafka): building it and reading its output.

Built with `cc` into build/rdkgen (gitignored) whenever a source is newer
than the binary; needs librdkafka's headers (Debian's librdkafka-dev,
installed by scripts/install-system-deps.sh). Its latency histograms use
1% log buckets in microseconds; bucket i holds values below 1.01^(i+1) µs,
so histograms from several processes merge by adding counts, and the
percentiles of the merged counts are those of the pooled samples.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from common import BENCH, ROOT

SOURCES = BENCH / "rdkgen_src"
BINARY = ROOT / "build" / "rdkgen"
HIST_BASE = 1.01
HEADER = Path("/usr/include/librdkafka/rdkafka.h")


class BuildError(RuntimeError):
    pass


def build(binary: Path = BINARY) -> Path:
    """The generator's path, (re)compiled when its source changed."""
    files = sorted(SOURCES.glob("*.[ch]"))
    if binary.exists() and binary.stat().st_mtime >= max(f.stat().st_mtime for f in files):
        return binary
    if not HEADER.exists():
        raise BuildError(f"{HEADER} is missing: install librdkafka-dev "
                         "(scripts/install-system-deps.sh)")
    binary.parent.mkdir(parents=True, exist_ok=True)
    tmp = binary.with_suffix(".tmp")
    res = subprocess.run(["cc", "-O2", "-Wall", "-o", str(tmp),
                          *[str(f) for f in files if f.suffix == ".c"],
                          "-lrdkafka", "-lpthread", "-lm"], capture_output=True, text=True)
    if res.returncode != 0:
        raise BuildError(f"cc {SOURCES.name}/*.c: {res.stderr.strip()[-400:]}")
    tmp.replace(binary)
    return binary


def parse_output(stdout: str) -> dict[str, Any]:
    """The last JSON object the generator printed (the idle mode prints two)."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            out: dict[str, Any] = json.loads(line)
            return out
    raise ValueError("rdkgen printed no JSON result")


Hist = dict[int, int]


def hist_of(out: dict[str, Any]) -> Hist:
    return {int(i): int(n) for i, n in out.get("hist", [])}


def merge(hists: Iterable[Hist]) -> Hist:
    total: Hist = {}
    for h in hists:
        for i, n in h.items():
            total[i] = total.get(i, 0) + n
    return total


def percentile_ms(hist: Hist, q: float, max_ms: float = math.inf) -> float:
    """The upper edge of the bucket holding the q-th pooled sample, in ms (as
    rdkgen computes it: at most 1% above the sample, never above the maximum)."""
    n = sum(hist.values())
    if n == 0:
        raise ValueError("no samples")
    rank = min(int(q * n), n - 1)
    seen = 0
    for i in sorted(hist):
        seen += hist[i]
        if seen > rank:
            return min(HIST_BASE ** (i + 1) / 1000.0, max_ms)
    raise AssertionError("unreachable")


def pooled(outs: list[dict[str, Any]]) -> dict[str, float]:
    """p50/p99/p99.9/max over the samples of several runs together."""
    h = merge(hist_of(o) for o in outs)
    mx = max(float(o.get("max_ms", 0.0)) for o in outs)
    return {"p50_ms": percentile_ms(h, 0.50, mx), "p99_ms": percentile_ms(h, 0.99, mx),
            "p999_ms": percentile_ms(h, 0.999, mx), "max_ms": mx,
            "samples": float(sum(h.values()))}
