"""Shared helpers for the benchmark harness: paths, ports, processes, /proc readings."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
CACHE = ROOT / ".cache"
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
KAFKA_TOOL = str(ROOT / "scripts" / "kafka-tool")
LOADGEN = str(BENCH / "loadgen.py")
CLK_TCK = os.sysconf("SC_CLK_TCK")

# What kafka-producer-perf-test.sh / kafka-run-class.sh give the Java tools:
# a 512 MiB heap and Kafka's default JVM performance options.
JAVA_PERF_OPTS = (
    "-Xmx512M -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 "
    "-XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent "
    "-XX:MaxInlineLevel=15 -Djava.awt.headless=true"
)
# What kafka-server-start.sh gives the broker: a 1 GiB heap, same options.
JAVA_SERVER_OPTS = JAVA_PERF_OPTS.replace("-Xmx512M", "-Xmx1G -Xms1G")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def proc_status_kib(pid: int, field: str) -> int | None:
    """A `VmRSS:`-style field of /proc/<pid>/status in KiB (None if gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children_cpu_s() -> float:
    """CPU seconds of this process's terminated, waited-for children."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def loadavg() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


@dataclass
class Completed:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: float
    timed_out: bool


def run_client(argv: Sequence[str], timeout: float, env: dict[str, str] | None = None,
               cwd: Path | None = None, stall_s: float = 0.0) -> Completed:
    """Run a load client to completion; report its wall time and CPU.

    With `stall_s`, a client that prints nothing on stdout for that long is
    taken as hung and killed (timed_out) instead of waiting for `timeout`."""
    cpu0 = children_cpu_s()
    t0 = time.perf_counter()
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=full_env, cwd=cwd, start_new_session=True)
    out_lines: list[str] = []
    err_lines: list[str] = []
    last_output = [time.monotonic()]

    def pump(stream: IO[str], sink: list[str], touch: bool) -> None:
        for line in stream:
            sink.append(line)
            if touch:
                last_output[0] = time.monotonic()

    assert proc.stdout is not None and proc.stderr is not None
    readers = [threading.Thread(target=pump, args=(proc.stdout, out_lines, True), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, err_lines, False), daemon=True)]
    for r in readers:
        r.start()
    timed_out = False
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        now = time.monotonic()
        if now > deadline or (stall_s and now - last_output[0] > stall_s):
            timed_out = True
            kill_group(proc)
            break
        time.sleep(0.05)
    proc.wait()
    for r in readers:
        r.join(timeout=5)
    return Completed(list(argv), proc.returncode, "".join(out_lines), "".join(err_lines),
                     time.perf_counter() - t0, children_cpu_s() - cpu0, timed_out)


def kill_group(proc: subprocess.Popen[str] | subprocess.Popen[bytes],
               grace: float = 0.0) -> None:
    """SIGTERM (then SIGKILL) the process group we started for `proc`."""
    if proc.poll() is not None:
        return
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
    except ProcessLookupError:
        return
    if grace > 0:
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
    proc.wait()


def tail(text: str, lines: int = 3) -> str:
    kept = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(kept[-lines:])[:400]


def median(values: Sequence[float]) -> float:
    s = sorted(values)
    n = len(s)
    if n == 0:
        raise ValueError("median of nothing")
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2
