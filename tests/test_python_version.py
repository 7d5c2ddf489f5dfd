"""strom on an unsupported Python: one line, not a traceback from deep inside
an import. pip refuses such an install (requires-python, checked by
`make dist-check`); this is what a checkout on PYTHONPATH does."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _old_python() -> str:
    for candidate in (shutil.which("python3.10"),
                      str(Path.home() / ".pyenv/versions/3.10.13/bin/python3.10")):
        if candidate and subprocess.run(
                [candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 10)"],
                capture_output=True, timeout=30).returncode == 0:
            return candidate
    pytest.skip("no Python 3.10 on this machine")


def test_command_on_python_3_10_prints_one_line(tmp_path: Path) -> None:
    python = _old_python()
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([python, "-m", "strom", "--version"], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(
        "error: strom needs Python 3.11 to 3.13; this is Python 3.10."), result.stderr
    assert len(result.stderr.splitlines()) == 1

    imported = subprocess.run([python, "-c", "import strom.testing"], capture_output=True,
                              text=True, env=env, cwd=tmp_path, timeout=60)
    assert imported.returncode == 1
    assert imported.stderr.splitlines()[-1].startswith(
        "ImportError: strom needs Python 3.11 to 3.13; this is Python 3.10.")
