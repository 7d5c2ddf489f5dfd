"""Typed events: headers, JSON, validation, upcasting."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from strom.views import EventError, EventRegistry, UnknownEventType, UnknownEventVersion


class Status(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class Line:
    sku: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True)
class OrderPlacedV3:
    order_id: str
    lines: list[Line]
    status: Status = Status.OPEN
    note: str | None = None
    tags: dict[str, int] = field(default_factory=dict)
    weight: float = 0.0


@dataclass(frozen=True)
class OrderPlacedV1:
    """What version 1 writers wrote: one line, a float price."""

    order_id: str
    sku: str
    quantity: int
    price: float


@dataclass
class Node:
    name: str
    children: list[Node] = field(default_factory=list)


def registry_v3() -> EventRegistry:
    reg = EventRegistry()
    reg.register(OrderPlacedV3, "OrderPlaced", version=3)
    reg.register(Node)

    @reg.upcaster("OrderPlaced", from_version=1)
    def v1_to_v2(old: dict[str, Any]) -> dict[str, Any]:
        return {"order_id": old["order_id"],
                "lines": [{"sku": old["sku"], "quantity": old["quantity"],
                           "unit_price_cents": round(old["price"] * 100)}]}

    @reg.upcaster("OrderPlaced", from_version=2)
    def v2_to_v3(old: dict[str, Any]) -> dict[str, Any]:
        return {**old, "status": "open"}

    return reg


def test_round_trip_with_headers() -> None:
    reg = registry_v3()
    event = OrderPlacedV3("o-1", [Line("apple", 2, 50), Line("pear", 1, 70)], Status.CLOSED,
                          "fragile ✓", {"gift": 1}, 1.5)
    encoded = reg.encode(event)
    assert dict(encoded.headers) == {"event-type": b"OrderPlaced", "event-version": b"3",
                                     "content-type": b"application/json"}
    assert json.loads(encoded.value)["lines"][0] == {"sku": "apple", "quantity": 2,
                                                    "unit_price_cents": 50}
    assert reg.decode(encoded.value, encoded.headers) == event
    # confluent-kafka hands headers back as a list of (str, bytes), or a dict
    assert reg.decode(encoded.value, dict(encoded.headers)) == event


def test_defaults_fill_missing_optional_fields_and_unknown_fields_are_ignored() -> None:
    reg = registry_v3()
    value = json.dumps({"order_id": "o", "lines": [], "added_by_a_newer_writer": 1}).encode()
    headers = [("event-type", b"OrderPlaced"), ("event-version", b"3")]
    assert reg.decode(value, headers) == OrderPlacedV3("o", [])


def test_upcasts_old_versions_one_step_at_a_time() -> None:
    writer = EventRegistry()
    writer.register(OrderPlacedV1, "OrderPlaced", version=1)
    old = writer.encode(OrderPlacedV1("o-9", "apple", 3, 0.5))
    assert dict(old.headers)["event-version"] == b"1"
    event = registry_v3().decode(old.value, old.headers)
    assert event == OrderPlacedV3("o-9", [Line("apple", 3, 50)], Status.OPEN)


def test_a_record_without_version_header_is_version_1() -> None:
    value = json.dumps({"order_id": "o", "sku": "s", "quantity": 1, "price": 1.0}).encode()
    event = registry_v3().decode(value, [("event-type", "OrderPlaced")])
    assert event.lines == [Line("s", 1, 100)]


def test_newer_version_than_the_reader_is_refused() -> None:
    with pytest.raises(UnknownEventVersion, match="newer"):
        registry_v3().decode(b"{}", [("event-type", b"OrderPlaced"), ("event-version", b"4")])


def test_missing_upcaster_is_named() -> None:
    reg = EventRegistry()
    reg.register(OrderPlacedV3, "OrderPlaced", version=3)
    with pytest.raises(UnknownEventVersion, match="no upcaster from v1 to v2"):
        reg.decode(b"{}", [("event-type", b"OrderPlaced"), ("event-version", b"1")])


def test_unknown_types() -> None:
    reg = registry_v3()
    with pytest.raises(UnknownEventType):
        reg.decode(b"{}", [("event-type", b"Nope")])
    with pytest.raises(UnknownEventType):
        reg.decode(b"{}", [])
    with pytest.raises(UnknownEventType):
        reg.encode(OrderPlacedV1("o", "s", 1, 1.0))
    assert reg.knows([("event-type", b"OrderPlaced")])
    assert not reg.knows([("event-type", b"Nope")])


@pytest.mark.parametrize("payload, message", [
    ({"lines": []}, "missing field 'order_id'"),
    ({"order_id": 5, "lines": []}, "OrderPlacedV3.order_id: expected str"),
    ({"order_id": "o", "lines": [{"sku": "a", "quantity": "2", "unit_price_cents": 1}]},
     "Line.quantity: expected int"),
    ({"order_id": "o", "lines": [{"sku": "a", "quantity": True, "unit_price_cents": 1}]},
     "Line.quantity: expected int"),
    ({"order_id": "o", "lines": {}}, "expected list"),
    ({"order_id": "o", "lines": [], "status": "lost"}, "is not a valid Status"),
    ({"order_id": "o", "lines": [], "weight": "heavy"}, "expected float"),
    ([], "expected an object"),
])
def test_validation(payload: Any, message: str) -> None:
    reg = registry_v3()
    with pytest.raises(EventError, match=message):
        reg.decode(json.dumps(payload).encode(),
                   [("event-type", b"OrderPlaced"), ("event-version", b"3")])


def test_ints_are_accepted_as_floats() -> None:
    reg = registry_v3()
    event = reg.decode(json.dumps({"order_id": "o", "lines": [], "weight": 2}).encode(),
                       [("event-type", b"OrderPlaced"), ("event-version", b"3")])
    assert event.weight == 2.0 and isinstance(event.weight, float)


def test_recursive_dataclasses() -> None:
    reg = registry_v3()
    tree = Node("root", [Node("a", [Node("a1")]), Node("b")])
    encoded = reg.encode(tree)
    assert reg.decode(encoded.value, encoded.headers) == tree


def test_registration_errors() -> None:
    reg = EventRegistry()
    with pytest.raises(TypeError):
        reg.register(int)
    reg.register(Line)
    with pytest.raises(ValueError, match="already registered"):
        reg.register(Node, "Line")
