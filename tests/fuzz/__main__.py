"""`make fuzz`: a million fuzz frames against a `strom serve` subprocess.

    .venv/bin/python -m tests.fuzz [--frames N] [--connections C] [--seed S]

Prints frames sent, broker crashes, ERROR lines and tracebacks in the broker's
log, RSS before and after, and whether records produced beforehand are intact;
exits 1 unless all goals are met (0 crashes, 0 ERROR, records intact, RSS
within 20% of the start).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.fuzz.driver import Stats
from tests.fuzz.harness import fuzz


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep the broker's data, log and crash frames here")
    args = parser.parse_args()

    def progress(stats: Stats) -> None:
        print(f"  {stats.frames_sent:,} frames, {stats.answers:,} answers, "
              f"{stats.closed_by_broker:,} closed, {stats.unanswered:,} unanswered",
              file=sys.stderr, flush=True)

    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
    report = fuzz(frames=args.frames, connections=args.connections, seed=args.seed,
                  work_dir=args.work_dir, on_progress=progress)
    print(report.format())
    return 0 if report.ok() and report.rss_growth <= 0.2 else 1


if __name__ == "__main__":
    sys.exit(main())
