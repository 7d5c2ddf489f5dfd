"""Records as the message browser shows them: values decoded (JSON
pretty-printed, UTF-8 text, hex otherwise), filters by key and by value
(text, or a dotted JSON path with an expected value). No I/O: unit-tested."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

#: Characters of a value shown before "show all".
PREVIEW_CHARS = 1000


@dataclass
class Message:
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)

    @property
    def key_text(self) -> str:
        return decode(self.key)[1]

    @property
    def value_decoded(self) -> tuple[str, str]:
        return decode(self.value)

    def as_json(self) -> dict[str, Any]:
        """One line of the JSON-lines download: text kept as text, other bytes base64."""
        return {"partition": self.partition, "offset": self.offset,
                "timestamp": self.timestamp, "key": _portable(self.key),
                "value": _portable(self.value),
                "headers": [[k, _portable(v)] for k, v in self.headers]}


def from_kafka(msg: Any) -> Message:
    """A Message from a confluent_kafka.Message."""
    _, timestamp = msg.timestamp()
    return Message(msg.partition(), msg.offset(), int(timestamp), msg.key(), msg.value(),
                   list(msg.headers() or []))


def decode(raw: bytes | None) -> tuple[str, str]:
    """(kind, text): kind is "null", "json", "text" or "hex"."""
    if raw is None:
        return "null", ""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "hex", raw.hex(" ")
    stripped = text.strip()
    if stripped[:1] in ("{", "[", '"') or stripped in ("true", "false", "null"):
        try:
            return "json", json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            pass
    return "text", text


def _portable(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(raw).decode("ascii")}


def json_path(document: Any, path: str) -> tuple[bool, Any]:
    """(found, value) at a dotted path ("order.items.0.sku"; list indexes as numbers)."""
    node = document
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


@dataclass
class Filter:
    """What the browser keeps: every given condition must hold.

    key: the key's text contains it; text: the value's text contains it;
    path/equals: the JSON value has that dotted path (equal to `equals` when
    given; compared as JSON when `equals` parses as JSON, else as text)."""

    key: str = ""
    text: str = ""
    path: str = ""
    equals: str = ""

    def __bool__(self) -> bool:
        return bool(self.key or self.text or self.path)

    def __call__(self, message: Message) -> bool:
        if self.key and self.key not in decode(message.key)[1]:
            return False
        kind, text = decode(message.value)
        if self.text and self.text not in text and self.text not in _raw_text(message.value):
            return False
        if self.path:
            if kind != "json":
                return False
            found, value = json_path(json.loads(text), self.path)
            if not found:
                return False
            if self.equals and not _equal(value, self.equals):
                return False
        return True


def _raw_text(raw: bytes | None) -> str:
    return raw.decode("utf-8", "replace") if raw is not None else ""


def _equal(value: Any, expected: str) -> bool:
    try:
        if value == json.loads(expected):
            return True
    except ValueError:
        pass
    return (value if isinstance(value, str) else json.dumps(value)) == expected
