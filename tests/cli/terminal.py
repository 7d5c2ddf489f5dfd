"""Running `strom` with one of its output streams on a pseudo-terminal, for
what commands do only on a terminal (colour, progress)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from collections.abc import Mapping
from typing import Literal


def run_on_terminal(args: list[str], stream: Literal["stdout", "stderr"],
                    env: Mapping[str, str] | None = None) -> tuple[int, bytes, bytes]:
    """Run `strom ARGS` with `stream` on a pseudo-terminal: (exit code, the
    other stream's bytes, what the terminal got).

    The terminal is read while the command runs: a pty buffers only a few
    KiB, and a long output would otherwise block the writer forever."""
    leader, follower = pty.openpty()
    try:
        to_stdout = stream == "stdout"
        proc = subprocess.Popen([sys.executable, "-m", "strom", *args],
                                env=None if env is None else dict(env),
                                stdout=follower if to_stdout else subprocess.PIPE,
                                stderr=subprocess.PIPE if to_stdout else follower)
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        out, err = proc.communicate(timeout=60)
        return proc.returncode, (err if to_stdout else out), b"".join(chunks)
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
