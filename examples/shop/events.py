"""The shop's event contracts: the only thing its services share.

Services never call each other; they agree on topics and on these types.
Schema changes are versioned: a reader upcasts old records, so old events
stay readable forever (the statistics service reads the whole history).

  orders            OrderPlaced        key: order id       (orders service)
  customer-updates  CustomerChanged    key: customer id    (customers service; compacted:
                    tombstone = deleted                     the latest state of each customer)
  shipments         ShipmentCreated    key: order id       (shipping service)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strom.views import EventRegistry, ensure_topic

ORDERS = "orders"
CUSTOMER_UPDATES = "customer-updates"
SHIPMENTS = "shipments"
PARTITIONS = 3

registry = EventRegistry()


@dataclass(frozen=True)
class OrderLine:
    sku: str
    quantity: int
    unit_price_cents: int


@registry.event("OrderPlaced", version=2)
@dataclass(frozen=True)
class OrderPlaced:
    order_id: str
    customer_id: str
    lines: list[OrderLine]
    placed_at: str  # ISO 8601, set by the orders service

    @property
    def total_cents(self) -> int:
        return sum(line.quantity * line.unit_price_cents for line in self.lines)


@registry.upcaster("OrderPlaced", from_version=1)
def _order_v1_to_v2(old: dict[str, Any]) -> dict[str, Any]:
    """v1 (before multi-line orders): one sku, a quantity and a float price in euros."""
    return {"order_id": old["order_id"], "customer_id": old["customer_id"],
            "lines": [{"sku": old["sku"], "quantity": old["quantity"],
                       "unit_price_cents": round(old["price"] * 100)}],
            "placed_at": old.get("placed_at", "1970-01-01T00:00:00+00:00")}


@dataclass(frozen=True)
class Address:
    street: str
    city: str
    zip: str

    def line(self) -> str:
        return f"{self.street}, {self.zip} {self.city}"


@registry.event("CustomerChanged", version=2)
@dataclass(frozen=True)
class CustomerChanged:
    """The whole customer after a change: on a compacted topic the latest record
    of a key must be enough to know the customer."""

    customer_id: str
    name: str
    address: Address


@registry.upcaster("CustomerChanged", from_version=1)
def _customer_v1_to_v2(old: dict[str, Any]) -> dict[str, Any]:
    """v1 kept the address as one line, "street, zip city"."""
    street, _, rest = old["address"].partition(",")
    zip_code, _, city = rest.strip().partition(" ")
    return {"customer_id": old["customer_id"], "name": old["name"],
            "address": {"street": street.strip(), "city": city.strip(), "zip": zip_code}}


@registry.event("ShipmentCreated", version=1)
@dataclass(frozen=True)
class ShipmentCreated:
    shipment_id: str
    order_id: str
    customer_id: str
    address: Address
    items: int


# Version 1 writers, kept to produce old records in the demo and the tests.
legacy = EventRegistry()


@legacy.event("CustomerChanged", version=1)
@dataclass(frozen=True)
class CustomerChangedV1:
    customer_id: str
    name: str
    address: str


@legacy.event("OrderPlaced", version=1)
@dataclass(frozen=True)
class OrderPlacedV1:
    order_id: str
    customer_id: str
    sku: str
    quantity: int
    price: float


def ensure_topics(bootstrap: str) -> None:
    """Create the shop's topics (each service calls it; creating twice is harmless)."""
    ensure_topic(bootstrap, ORDERS, partitions=PARTITIONS)
    ensure_topic(bootstrap, CUSTOMER_UPDATES, partitions=PARTITIONS,
                 config={"cleanup.policy": "compact"})
    ensure_topic(bootstrap, SHIPMENTS, partitions=PARTITIONS)
