"""`strom serve` on more than one core: one broker process per core (issue 19).

A strom broker runs on one event loop, so one process uses one core for its
Python work. With `strom.processes=N` (N > 1, or 0 for one per usable core)
`strom serve` starts N broker processes instead and supervises them. Each is
an ordinary broker of the cluster, with its own identity derived from the
configuration it was given:

- node.id: node.id + i (shard 0 keeps the configured id);
- every port of `listeners`, `advertised.listeners` and
  `strom.http.listener`: port + i;
- every log dir: shard 0 keeps it, shard i > 0 uses `<dir>-shard<i>`
  beside it (a subdirectory would be read as a partition directory);
- CPU affinity: core i of the usable ones (round robin past the last).

Why processes that are brokers, and nothing in between: Kafka's clients
already route every produce and fetch to the partition's leader, and
FindCoordinator sends group and transaction traffic to the coordinator's
broker, so shards that own disjoint partition sets need no request
forwarding and share no memory; what they share is the cluster metadata,
which cluster mode keeps in etcd. That is why N > 1 requires
`strom.metadata.etcd.endpoints`: a single node's metadata lives in its own
log dir and a second process could not see it. Measured on a shared
2-core machine with the client on the same cores (docs/benchmarks.md, "More
than one core"): 1.2-1.7x the one-record requests per second of one
process, at the same CPU per request.

Supervision: SIGTERM/SIGINT go to every shard once (each shuts down cleanly
on its own); if one shard exits, the others are stopped and `strom serve`
exits with its code, so a service manager restarts the whole set, as it
would a single broker; if the supervisor itself is killed, the shards get
SIGTERM from the kernel (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence

from strom.config import BrokerConfig
from strom.errors import InvalidConfigError

__all__ = ["process_count", "shard_overrides", "supervise"]


def usable_cores() -> list[int]:
    """The cores this process may run on (taskset/cgroup cpusets included)."""
    return sorted(os.sched_getaffinity(0))


def process_count(config: BrokerConfig) -> int:
    """Broker processes to run: strom.processes, 0 meaning one per usable core.
    More than one needs cluster mode (the module docstring says why)."""
    value = config.get("strom.processes")
    assert isinstance(value, int)
    count = value or len(usable_cores())
    if count > 1 and not config.etcd_endpoints:
        if value == 0:
            return 1  # "one per core" on a single node: the one it can be
        raise InvalidConfigError(
            f"strom.processes={count} needs cluster mode (strom.metadata.etcd.endpoints): "
            "the processes are brokers that share cluster metadata through etcd")
    return count


def _shift_port(item: str, by: int, setting: str) -> str:
    head, colon, port = item.strip().rpartition(":")
    if not colon or not port.isdigit():
        raise InvalidConfigError(f"{setting}: cannot parse {item!r}; expected ...://host:port")
    if int(port) == 0:
        raise InvalidConfigError(f"{setting}: port 0 cannot be shifted per process; "
                                 "give a port with strom.processes > 1")
    if int(port) + by > 65535:
        raise InvalidConfigError(f"{setting}: port {port} + {by} is past 65535")
    return f"{head}:{int(port) + by}"


def shard_overrides(config: BrokerConfig, shard: int) -> list[str]:
    """--override values that make process `shard` (0-based) its own broker."""
    if shard == 0:
        return ["strom.processes=1"]
    out = ["strom.processes=1", f"node.id={config.node_id + shard}"]
    for setting in ("listeners", "advertised.listeners"):
        raw = config.get(setting)
        if isinstance(raw, list) and raw:
            out.append(f"{setting}=" + ",".join(_shift_port(x, shard, setting) for x in raw))
    http = config.get("strom.http.listener")
    if isinstance(http, str) and http:
        out.append("strom.http.listener=" + _shift_port(http, shard, "strom.http.listener"))
    dirs = [str(d).rstrip("/") + f"-shard{shard}" for d in config.log_dirs]
    out.append("log.dirs=" + ",".join(dirs))
    return out


def supervise(config: BrokerConfig, count: int, argv: Sequence[str]) -> int:
    """Run `count` broker processes (`argv`: this `strom serve`'s own
    arguments) until a signal or until one of them exits."""
    for setting in ("listeners", "advertised.listeners"):
        raw = config.get(setting)
        if isinstance(raw, list):  # refuse port 0 and overflow before starting any
            for shard in range(1, count):
                for item in raw:
                    _shift_port(item, shard, setting)
    cores = usable_cores()
    prctl = _libc_prctl()
    procs: list[subprocess.Popen[bytes]] = []
    for shard in range(count):
        core = cores[shard % len(cores)]
        args = [sys.executable, "-m", "strom", "serve", *argv]
        for item in shard_overrides(config, shard):
            args += ["--override", item]
        # Its own process group: a terminal's Ctrl-C reaches only this
        # supervisor, which forwards it once.
        procs.append(subprocess.Popen(args, process_group=0,
                                      preexec_fn=functools.partial(_child_setup, core, prctl)))
    stopping = threading.Event()
    signalled: set[int] = set()

    def stop_all(signum: int = signal.SIGTERM, _frame: object = None) -> None:
        # Once per process: a broker that has finished its clean shutdown has
        # given SIGTERM back its default action, and a second one would kill it.
        stopping.set()
        for p in procs:
            if p.pid not in signalled and p.poll() is None:
                signalled.add(p.pid)
                p.send_signal(signum)

    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    code = 0
    try:
        code = _wait_any(procs)
        if not stopping.is_set():  # a shard died on its own: take the set down
            print(f"strom serve: a broker process exited with {code}; stopping the others",
                  file=sys.stderr, flush=True)
        stop_all()
        for p in procs:
            rc = p.wait()
            code = code or rc
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return code


def _libc_prctl() -> Callable[[int, int], int] | None:
    """libc's prctl(2), None off Linux. ctypes is imported here, by the
    supervisor only: a single broker's `strom serve` never needs it (issue 19)."""
    import ctypes

    try:
        prctl: Callable[[int, int], int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: the supervisor still stops them
        return None
    return prctl


def _child_setup(core: int, prctl: Callable[[int, int], int] | None) -> None:
    """In the child before exec: run on `core` only, and get SIGTERM (a clean
    shutdown) if the supervisor dies, even by kill -9 (Linux's
    PR_SET_PDEATHSIG), so no broker outlives its `strom serve`."""
    os.sched_setaffinity(0, {core})
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


def _wait_any(procs: list[subprocess.Popen[bytes]]) -> int:
    """The exit code of the first of `procs` to exit (reaped by os.wait)."""
    by_pid = {p.pid: p for p in procs}
    while True:
        try:
            pid, status = os.wait()
        except InterruptedError:  # pragma: no cover - PEP 475 retries
            continue
        proc = by_pid.get(pid)
        if proc is not None:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode

