#!/usr/bin/env python3
"""Run a benchmark beside competing CPU load (issue 19: "a busy machine").

  python bench/busy.py -- python bench/run.py --brokers kafka,strom --out bench/results/busy
  python bench/busy.py --hogs 1 -- <any command>

Starts `--hogs` CPU hogs (Python busy loops, not pinned: the scheduler
places them, as it would another service's threads), runs the command, stops
the hogs, and prints how much CPU they took (cores) so a reader sees the
competition was real. The issue's reference was "one other busy process on
the machine (a JVM running beside it)"; one hog is the default.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from common import CLK_TCK, log

HOG = "while True: pass"


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hogs", type=int, default=1)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("no command")
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(args.hogs)]
    t0 = time.monotonic()
    try:
        rc = subprocess.call(command)
    finally:
        wall = time.monotonic() - t0
        used = sum(cpu_s(h.pid) for h in hogs)
        for h in hogs:
            h.kill()
            h.wait()
    log(f"{args.hogs} CPU hog(s) took {used / max(wall, 1e-9):.2f} cores over {wall:.0f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
