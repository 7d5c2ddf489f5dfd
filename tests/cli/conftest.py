"""Run `strom` commands in-process against the session broker.

`cli(...)` calls strom.cli.main.main with its own stdin, stdout and stderr
and returns the exit code and what was written; the bootstrap address comes
from STROM_BOOTSTRAP_SERVER, so tests exercise the same default as users.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from strom.cli.main import main
from strom.testing import EmbeddedBroker


@dataclass
class Result:
    code: int
    stdout_bytes: bytes
    stderr: str

    @property
    def stdout(self) -> str:
        return self.stdout_bytes.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.stdout)

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.stdout.splitlines() if line]


Cli = Callable[..., Result]


def run_cli(*args: str, stdin: bytes = b"") -> Result:
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    err = io.StringIO()
    inp = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = inp, out, err
    try:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out.flush()
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    raw = out.buffer
    assert isinstance(raw, io.BytesIO)
    return Result(code, raw.getvalue(), err.getvalue())


@pytest.fixture
def cli(broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("STROM_BOOTSTRAP_SERVER", broker.bootstrap)
    monkeypatch.delenv("NO_COLOR", raising=False)
    return run_cli


def ok(result: Result) -> Result:
    assert result.code == 0, f"exit {result.code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result

