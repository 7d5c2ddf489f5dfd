"""The browser's decoding and filters, sans I/O."""

from __future__ import annotations

import json

from strom.console.messages import Filter, Message, decode, json_path


def msg(value: bytes | None, key: bytes | None = None) -> Message:
    return Message(0, 0, 0, key, value, [("h", b"\xff")])


def test_decode_kinds() -> None:
    assert decode(None) == ("null", "")
    assert decode(b'{"a":1}') == ("json", '{\n  "a": 1\n}')
    assert decode(b"[1, 2") == ("text", "[1, 2")
    assert decode("grüße".encode()) == ("text", "grüße")
    assert decode(b"\x00\xff\x10") == ("hex", "00 ff 10")


def test_json_path() -> None:
    doc = {"order": {"items": [{"sku": "A"}, {"sku": "B"}]}}
    assert json_path(doc, "order.items.1.sku") == (True, "B")
    assert json_path(doc, "order.items.2.sku") == (False, None)
    assert json_path(doc, "order.missing") == (False, None)


def test_filters() -> None:
    record = msg(json.dumps({"user": {"id": 7, "name": "ann"}}).encode(), b"user-7")
    assert Filter(key="user-7")(record)
    assert not Filter(key="user-8")(record)
    assert Filter(text="ann")(record)
    assert Filter(path="user.id", equals="7")(record)
    assert Filter(path="user.name", equals="ann")(record)
    assert not Filter(path="user.id", equals="8")(record)
    assert not Filter(path="user.email")(record)
    assert not Filter(path="user.id")(msg(b"not json"))
    assert not Filter()  # no condition: keep everything without calling it


def test_jsonl_keeps_binary_as_base64() -> None:
    line = msg(b"\xff\x00", b"k").as_json()
    assert line["key"] == "k"
    assert line["value"] == {"base64": "/wA="}
    assert line["headers"] == [["h", {"base64": "/w=="}]]
