"""Shipping service: turns orders into shipments.

It consumes `orders` and keeps its own view of customer addresses, built from
`customer-updates`; it never asks the customers service. For each order it
creates a shipment to the customer's current address, stores it, and
publishes ShipmentCreated to `shipments`, all exactly once: the view applies
each event once (offsets in its SQLite store) and publishes through the
store's outbox. An order whose customer it has not heard of yet waits
("held") until the customer's record arrives.

When shipping is down, orders keep being accepted (they wait in `orders`);
when it comes back it resumes from its stored offsets.

    GET /shipments, /shipments/<order id>, /addresses/<customer id>, /health

    python -m examples.shop.shipping --bootstrap localhost:9092 --data-dir data/shipping
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from examples.shop.events import (
    CUSTOMER_UPDATES,
    ORDERS,
    SHIPMENTS,
    Address,
    CustomerChanged,
    OrderPlaced,
    ShipmentCreated,
    ensure_topics,
    registry,
)
from examples.shop.service import Service, main
from examples.shop.web import HttpError
from strom.views import Context, MemoryStore, SQLiteStore, View, ViewStore


def shipping_view(bootstrap: str, store: ViewStore, *, max_batch: int = 500,
                  apply_delay: float = 0.0) -> View:
    view = View("shipping", bootstrap=bootstrap, topics=[ORDERS, CUSTOMER_UPDATES],
                registry=registry, store=store, max_batch=max_batch,
                # addresses first: after downtime, orders ship to up-to-date addresses
                restore_first=[CUSTOMER_UPDATES])

    def ship(order: dict[str, Any], address: dict[str, Any], ctx: Context) -> None:
        shipment = ShipmentCreated(f"s-{order['order_id']}", order["order_id"],
                                   order["customer_id"], Address(**address), order["items"])
        ctx.put("shipments", order["order_id"],
                {**asdict(shipment), "status": "created",
                 "address_line": shipment.address.line(), "created_ms": ctx.timestamp_ms})
        ctx.publish(SHIPMENTS, shipment, key=shipment.order_id)

    @view.on(OrderPlaced)
    def order_placed(event: OrderPlaced, ctx: Context) -> None:
        if apply_delay:
            time.sleep(apply_delay)  # for tests: widen the window a crash can hit
        held_key = f"{event.customer_id}/{event.order_id}"
        if ctx.get("shipments", event.order_id) is not None or ctx.get("held", held_key):
            return  # the same order placed twice (a client retry): one shipment
        order = {"order_id": event.order_id, "customer_id": event.customer_id,
                 "items": sum(line.quantity for line in event.lines)}
        address = ctx.get("addresses", event.customer_id)
        if address is None:
            ctx.put("held", held_key, order)
        else:
            ship(order, address, ctx)

    @view.on(CustomerChanged)
    def customer_changed(event: CustomerChanged, ctx: Context) -> None:
        address = asdict(event.address)
        ctx.put("addresses", event.customer_id, address)
        for key, order in ctx.items("held", f"{event.customer_id}/"):
            ctx.delete("held", key)
            ship(order, address, ctx)

    @view.on_tombstone(CUSTOMER_UPDATES)
    def customer_deleted(key: bytes | None, ctx: Context) -> None:
        ctx.delete("addresses", (key or b"").decode())

    return view


class ShippingService(Service):
    name = "shipping"

    def __init__(self, bootstrap: str, *, data_dir: Path | None = None,
                 max_batch: int = 500, apply_delay: float = 0.0, **kwargs: Any) -> None:
        super().__init__(bootstrap, data_dir=data_dir, **kwargs)
        ensure_topics(bootstrap)
        store = SQLiteStore(data_dir / "shipping.db") if data_dir else MemoryStore()
        self.view = shipping_view(bootstrap, store, max_batch=max_batch,
                                  apply_delay=apply_delay)
        self.views.append(self.view)
        self._store = store
        route = self.http.route
        route("GET", "/shipments")(self.list)
        route("GET", "/shipments/([^/]+)")(self.get)
        route("GET", "/addresses/([^/]+)")(self.address)

    def list(self, groups: tuple[str, ...], query: dict[str, str],
             body: Any) -> tuple[int, Any]:
        with self.view.snapshot() as snap:
            shipments = [s for _, s in snap.items("shipments")]
            held = [{**o, "status": "awaiting customer address"} for _, o in snap.items("held")]
        return 200, {"shipments": shipments, "held": held}

    def get(self, groups: tuple[str, ...], query: dict[str, str],
            body: Any) -> tuple[int, Any]:
        with self.view.snapshot() as snap:
            shipment = snap.get("shipments", groups[0])
        if shipment is None:
            raise HttpError(404, f"no shipment for order {groups[0]} (yet)")
        return 200, shipment

    def address(self, groups: tuple[str, ...], query: dict[str, str],
                body: Any) -> tuple[int, Any]:
        with self.view.snapshot() as snap:
            address = snap.get("addresses", groups[0])
        if address is None:
            raise HttpError(404, f"shipping knows no address for {groups[0]}")
        return 200, address

    def stop(self) -> None:
        super().stop()
        self._store.close()


if __name__ == "__main__":
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--max-batch", type=int, default=500)
        parser.add_argument("--apply-delay", type=float, default=0.0, help=argparse.SUPPRESS)

    def build(args: argparse.Namespace) -> Service:
        return ShippingService(args.bootstrap, host=args.host, port=args.port,
                               data_dir=args.data_dir, max_batch=args.max_batch,
                               apply_delay=args.apply_delay)

    raise SystemExit(main(build, "The shop's shipping service", add_arguments))
