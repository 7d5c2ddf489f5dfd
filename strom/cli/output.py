"""Human and machine output for the `strom` commands.

Tables are aligned plain text, coloured only when the stream is a terminal
and NO_COLOR is unset (https://no-color.org); `--output json` prints one JSON
document (or JSON lines for streams of records). Progress goes to stderr and
only when stderr is a terminal, so pipes and logs never see it.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

__all__ = [
    "Progress",
    "Style",
    "bytes_field",
    "is_tty",
    "print_json",
    "render_table",
    "text",
]

_RESET = "\x1b[0m"
_CODES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}


def is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Style:
    """ANSI styling for one stream: a no-op unless it is a colour terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.enabled = (
            is_tty(stream)
            and "NO_COLOR" not in os.environ
            and os.environ.get("TERM") != "dumb"
        )

    def __call__(self, value: str, *styles: str) -> str:
        if not self.enabled or not styles or not value:
            return value
        codes = ";".join(_CODES[s] for s in styles)
        return f"\x1b[{codes}m{value}{_RESET}"


def text(value: object) -> str:
    """How a cell shows a value: None as "-", lists comma-separated."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(text(v) for v in value) or "-"
    return str(value)


def render_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    stream: TextIO | None = None,
    numeric: Iterable[int] = (),
) -> None:
    """Print rows under headers, columns padded to their widest cell; the
    `numeric` columns are right-aligned. Header in bold on a terminal."""
    out = stream or sys.stdout
    style = Style(out)
    cells = [[text(value) for value in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    right = set(numeric)

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(widths[i]) if i in right else v.ljust(widths[i])
            for i, v in enumerate(values)
        ]
        return "  ".join(parts).rstrip()

    out.write(style(line(list(headers)), "bold") + "\n")
    for row in cells:
        out.write(line(row) + "\n")


def print_json(document: object, *, stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    json.dump(document, out, indent=2, sort_keys=False)
    out.write("\n")


def bytes_field(name: str, data: bytes | None) -> dict[str, Any]:
    """A key or value for JSON: {name: text} when it is UTF-8, else
    {name_base64: ...}; null stays null. Keeps every byte recoverable."""
    if data is None:
        return {name: None}
    try:
        return {name: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {f"{name}_base64": base64.b64encode(data).decode("ascii")}


class Progress:
    """A one-line progress indicator on stderr, shown only on a terminal.

    `total` may be None (unknown): then it shows the count and rate only.
    Redraws at most ten times a second; `close()` erases the line.
    """

    def __init__(self, label: str, total: int | None, unit: str, *,
                 stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = is_tty(self.stream) if enabled is None else enabled
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self._started = time.monotonic()
        self._drawn = 0.0
        self._width = 0

    def advance(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._drawn >= 0.1:
            self._drawn = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self._started, 1e-6)
        rate = self.done / elapsed
        if self.total:
            fraction = min(self.done / self.total, 1.0)
            filled = int(fraction * 24)
            bar = "#" * filled + "-" * (24 - filled)
            line = (f"{self.label} [{bar}] {fraction:4.0%} "
                    f"{_human(self.done)}/{_human(self.total)} {self.unit} "
                    f"{_human(rate)}/s")
        else:
            line = f"{self.label} {_human(self.done)} {self.unit} {_human(rate)}/s"
        pad = max(self._width - len(line), 0)
        self._width = len(line)
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


def _human(n: float) -> str:
    for unit in ("", "k", "M", "G"):
        if abs(n) < 1000:
            return f"{n:.0f}{unit}" if unit == "" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n:.1f}T"
