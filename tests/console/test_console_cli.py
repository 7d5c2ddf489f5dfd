"""`strom console` as a command: serves pages for a strom broker, stops on Ctrl-C."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from strom.testing import EmbeddedBroker

STROM = Path(sys.executable).parent / "strom"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_console_command_serves_and_stops_on_ctrl_c(broker: EmbeddedBroker) -> None:
    port = free_port()
    process = subprocess.Popen([str(STROM), "console", "-b", broker.bootstrap, "--listen",
                                f"127.0.0.1:{port}"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
                    page = r.read().decode()
                break
            except OSError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "strom console did not start"
                time.sleep(0.1)
        assert broker.bootstrap in page and "Brokers" in page
        # An open live stream does not hold up the exit.
        events = urllib.request.urlopen(f"http://127.0.0.1:{port}/events/overview", timeout=10)
        assert events.readline().startswith(b"data: ")
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
        assert process.returncode == 0
        assert f"strom console on http://127.0.0.1:{port}/ for {broker.bootstrap}" in out
        events.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
