"""A strom broker in a subprocess, for tests that kill or restart it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def default_sigint() -> None:
    """A child's preexec_fn where a test sends it SIGINT (a terminal's Ctrl-C):
    a process started with SIGINT ignored (anything launched in the background
    by a non-interactive shell, e.g. `.ci/run &`) keeps it ignored, so Python
    raises no KeyboardInterrupt and bash cannot trap it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StromProcess:
    def __init__(self, data_dir: Path, port: int | None = None,
                 overrides: dict[str, str] | None = None,
                 preexec_fn: Callable[[], None] | None = None,
                 log_level: str = "INFO") -> None:
        self.data_dir = data_dir
        self.log_level = log_level
        self.port = port or free_port()
        self.overrides = overrides or {}
        #: Run in the child before strom starts (e.g. to lower its rlimits).
        self.preexec_fn = preexec_fn
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"strom-{self.port}.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> None:
        args = [sys.executable, "-m", "strom", "serve",
                "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "--override", f"log.dirs={self.data_dir}", "--log-level", self.log_level]
        for key, value in self.overrides.items():
            args += ["--override", f"{key}={value}"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, preexec_fn=self.preexec_fn)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"strom exited with {self.proc.returncode}: "
                                   f"{self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)  # polling a port: there is no event to wait on
        raise TimeoutError(f"strom did not listen on {self.port} within {timeout}s")

    def kill(self) -> None:
        """kill -9: no flush, no checkpoints."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()
