"""How `strom consume` prints a record: plain, JSON lines, or a kcat-style
`-f` template. Output is bytes, so binary keys and values pass unchanged."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from strom.cli.common import UsageError
from strom.cli.output import bytes_field
from strom.cli.produce import unescape

__all__ = ["ConsumedRecord", "Formatter", "json_formatter", "plain_formatter",
           "template_formatter"]

TEMPLATE_HELP = """\
template codes (as kcat's -f):
  %s value      %S value length (-1 for null)   %R value length, 4-byte big endian
  %k key        %K key length (-1 for null)
  %t topic      %p partition    %o offset       %T timestamp (ms since the epoch)
  %h headers as k=v,k2=v2       %% a literal %
  escapes: \\n \\r \\t \\0 \\\\ \\xNN
"""

_TIMESTAMP_TYPES = {0: None, 1: "CreateTime", 2: "LogAppendTime"}


@dataclass(frozen=True, slots=True)
class ConsumedRecord:
    topic: str
    partition: int
    offset: int
    timestamp: int
    timestamp_type: str | None
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]]

    @classmethod
    def from_message(cls, message: Any) -> ConsumedRecord:
        ts_type, timestamp = message.timestamp()
        return cls(message.topic(), message.partition(), message.offset(),
                   timestamp, _TIMESTAMP_TYPES.get(ts_type), message.key(), message.value(),
                   tuple(message.headers() or ()))


Formatter = Callable[[ConsumedRecord], bytes]


def plain_formatter(*, print_key: bool, key_separator: bytes) -> Formatter:
    """The value (and the key before it), one record per line; null as "null"
    like kafka-console-consumer."""

    def show(data: bytes | None) -> bytes:
        return b"null" if data is None else data

    if print_key:
        return lambda r: show(r.key) + key_separator + show(r.value) + b"\n"
    return lambda r: show(r.value) + b"\n"


def json_formatter() -> Formatter:
    """One JSON object per line. Keys, values and header values are strings
    when they are UTF-8, otherwise `key_base64` / `value_base64`."""

    def render(r: ConsumedRecord) -> bytes:
        document: dict[str, Any] = {
            "topic": r.topic, "partition": r.partition, "offset": r.offset,
            "timestamp": r.timestamp, "timestamp_type": r.timestamp_type,
        }
        document.update(bytes_field("key", r.key))
        document.update(bytes_field("value", r.value))
        document["headers"] = [{"key": k, **bytes_field("value", v)} for k, v in r.headers]
        return json.dumps(document, ensure_ascii=False).encode("utf-8") + b"\n"

    return render


def _length(data: bytes | None) -> int:
    return -1 if data is None else len(data)


_CODES: dict[str, Callable[[ConsumedRecord], bytes]] = {
    "s": lambda r: r.value or b"",
    "S": lambda r: str(_length(r.value)).encode(),
    "R": lambda r: struct.pack(">i", _length(r.value)),
    "k": lambda r: r.key or b"",
    "K": lambda r: str(_length(r.key)).encode(),
    "t": lambda r: r.topic.encode("utf-8"),
    "p": lambda r: str(r.partition).encode(),
    "o": lambda r: str(r.offset).encode(),
    "T": lambda r: str(r.timestamp).encode(),
    "h": lambda r: b",".join(k.encode("utf-8") + b"=" + (v or b"") for k, v in r.headers),
}


def template_formatter(template: str) -> Formatter:
    """Compile a kcat `-f` template; unknown %-codes are a usage error."""
    parts: list[bytes | Callable[[ConsumedRecord], bytes]] = []
    literal: list[str] = []
    i = 0
    while i < len(template):
        char = template[i]
        if char != "%":
            literal.append(char)
            i += 1
            continue
        if i + 1 >= len(template):
            raise UsageError("format ends with a lone '%' (use %% for a literal %)")
        code = template[i + 1]
        i += 2
        if code == "%":
            literal.append("%")
            continue
        if code not in _CODES:
            raise UsageError(f"unknown format code %{code} (known: "
                             f"{' '.join('%' + c for c in _CODES)} %%)")
        if literal:
            parts.append(unescape("".join(literal)))
            literal = []
        parts.append(_CODES[code])
    if literal:
        parts.append(unescape("".join(literal)))

    def render(r: ConsumedRecord) -> bytes:
        return b"".join(part if isinstance(part, bytes) else part(r) for part in parts)

    return render
