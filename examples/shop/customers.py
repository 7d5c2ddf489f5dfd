"""Customers service: manages customers over HTTP; every change goes to the
compacted topic `customer-updates`, keyed by customer id.

The topic is its source of truth: the service's own list of customers is a
view of that topic, so it holds no state another service could not rebuild.
After a write it waits until its view has applied it (read your own writes).

    POST   /customers                 {"customer_id"?, "name", "address": {street, city, zip}}
    PUT    /customers/<id>/address    {"street", "city", "zip"}
    DELETE /customers/<id>            (a tombstone: compaction forgets the customer)
    GET    /customers, /customers/<id>

    python -m examples.shop.customers --bootstrap localhost:9092 --port 8002
"""

from __future__ import annotations

import argparse
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from examples.shop.events import (
    CUSTOMER_UPDATES,
    Address,
    CustomerChanged,
    ensure_topics,
    registry,
)
from examples.shop.service import Service, main
from examples.shop.web import HttpError
from strom.views import (
    BrokerUnavailable,
    Context,
    Delivery,
    MemoryStore,
    Publisher,
    PublishError,
    SQLiteStore,
    View,
    ViewsError,
    ViewState,
)


class CustomersService(Service):
    name = "customers"

    def __init__(self, bootstrap: str, *, data_dir: Path | None = None, **kwargs: Any) -> None:
        super().__init__(bootstrap, data_dir=data_dir, **kwargs)
        ensure_topics(bootstrap)
        self.publisher = Publisher(bootstrap, registry, request_timeout=10)
        store = SQLiteStore(data_dir / "customers.db") if data_dir else MemoryStore()
        self.view = View("customers", bootstrap=bootstrap, topics=[CUSTOMER_UPDATES],
                         registry=registry, store=store)
        self.views.append(self.view)

        @self.view.on(CustomerChanged)
        def changed(event: CustomerChanged, ctx: Context) -> None:
            ctx.put("customers", event.customer_id, asdict(event))

        @self.view.on_tombstone(CUSTOMER_UPDATES)
        def deleted(key: bytes | None, ctx: Context) -> None:
            ctx.delete("customers", (key or b"").decode())

        route = self.http.route
        route("POST", "/customers")(self.create)
        route("PUT", "/customers/([^/]+)/address")(self.move)
        route("DELETE", "/customers/([^/]+)")(self.delete)
        route("GET", "/customers")(self.list)
        route("GET", "/customers/([^/]+)")(self.get)

    def _publish(self, customer_id: str, change: CustomerChanged | None) -> Delivery:
        try:
            if change is None:
                delivery = self.publisher.produce(CUSTOMER_UPDATES, None,
                                                  key=customer_id).result(15)
            else:
                delivery = self.publisher.publish(CUSTOMER_UPDATES, change, key=customer_id)
            # read your own write: the view applies it before we answer
            self.view.wait_for({(delivery.topic, delivery.partition): delivery.offset + 1},
                               timeout=10)
        except (PublishError, BrokerUnavailable) as exc:
            raise HttpError(503, f"change not accepted: {exc}") from None
        except ViewsError as exc:
            raise HttpError(503, f"change accepted, not visible yet: {exc}") from None
        return delivery

    def _current(self, customer_id: str) -> dict[str, Any]:
        if self.view.state is ViewState.RESTORING:
            try:  # just started: let the view restore before answering "no such customer"
                self.view.catch_up(5)
            except ViewsError as exc:
                raise HttpError(503, f"still restoring: {exc}") from None
        with self.view.snapshot() as snap:
            customer = snap.get("customers", customer_id)
        if customer is None:
            raise HttpError(404, f"no customer {customer_id}")
        return dict(customer)

    def create(self, groups: tuple[str, ...], query: dict[str, str],
               body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise HttpError(400, "expected {name, address}")
        customer_id = str(body.get("customer_id") or f"c-{uuid.uuid4().hex[:8]}")
        change = CustomerChanged(customer_id, body["name"], parse_address(body.get("address")))
        self._publish(customer_id, change)
        return 201, asdict(change)

    def move(self, groups: tuple[str, ...], query: dict[str, str],
             body: Any) -> tuple[int, Any]:
        customer = self._current(groups[0])
        change = CustomerChanged(groups[0], customer["name"], parse_address(body))
        self._publish(groups[0], change)
        return 200, asdict(change)

    def delete(self, groups: tuple[str, ...], query: dict[str, str],
               body: Any) -> tuple[int, Any]:
        self._current(groups[0])
        self._publish(groups[0], None)
        return 200, {"deleted": groups[0]}

    def list(self, groups: tuple[str, ...], query: dict[str, str],
             body: Any) -> tuple[int, Any]:
        with self.view.snapshot() as snap:
            return 200, [c for _, c in snap.items("customers")]

    def get(self, groups: tuple[str, ...], query: dict[str, str],
            body: Any) -> tuple[int, Any]:
        return 200, self._current(groups[0])

    def stop(self) -> None:
        super().stop()
        self.publisher.close(5)


def parse_address(value: Any) -> Address:
    if not isinstance(value, dict):
        raise HttpError(400, "address must be {street, city, zip}")
    try:
        return Address(str(value["street"]), str(value["city"]), str(value["zip"]))
    except KeyError as exc:
        raise HttpError(400, f"address needs {exc}") from None


if __name__ == "__main__":
    def build(args: argparse.Namespace) -> Service:
        return CustomersService(args.bootstrap, host=args.host, port=args.port,
                                data_dir=args.data_dir)

    raise SystemExit(main(build, "The shop's customers service"))
