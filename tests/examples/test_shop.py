"""The shop, services in-process against a real strom broker (one per test)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from examples.shop.customers import CustomersService
from examples.shop.events import (
    CUSTOMER_UPDATES,
    ORDERS,
    SHIPMENTS,
    CustomerChangedV1,
    OrderPlacedV1,
    ensure_topics,
    legacy,
)
from examples.shop.orders import OrdersService
from examples.shop.service import Service
from examples.shop.shipping import ShippingService
from examples.shop.statistics import StatisticsService
from examples.shop.web import call
from strom.testing import EmbeddedBroker
from strom.views import Publisher


@pytest.fixture
def shop(strom_broker: EmbeddedBroker, tmp_path: Path) -> Iterator[Shop]:
    shop = Shop(strom_broker, tmp_path)
    try:
        yield shop
    finally:
        shop.close()


class Shop:
    def __init__(self, broker: EmbeddedBroker, tmp_path: Path) -> None:
        self.broker = broker
        self.bootstrap = broker.bootstrap
        self.tmp = tmp_path
        self.services: list[Service] = []
        ensure_topics(self.bootstrap)

    def start(self, factory: Callable[..., Service], **kwargs: Any) -> Any:
        service = factory(self.bootstrap, **kwargs).start()
        self.services.append(service)
        return service

    def stop(self, service: Service) -> None:
        service.stop()
        self.services.remove(service)

    def close(self) -> None:
        for service in reversed(self.services):
            service.stop()

    def customer(self, customers: Service, cid: str, street: str) -> None:
        status, body = call("POST", f"{customers.url}/customers",
                            {"customer_id": cid, "name": cid.title(),
                             "address": {"street": street, "city": "Town", "zip": "1"}})
        assert status == 201, body

    def order(self, orders: Service, cid: str, sku: str = "tea", qty: int = 1,
              cents: int = 100) -> str:
        status, body = call("POST", f"{orders.url}/orders",
                            {"customer_id": cid, "lines": [
                                {"sku": sku, "quantity": qty, "unit_price_cents": cents}]})
        assert status == 201, body
        return str(body["order_id"])

    def caught_up(self, service: Service, timeout: float = 20) -> None:
        status, body = call("GET", f"{service.url}/health/caught-up?timeout={timeout}",
                            timeout=timeout + 5)
        assert status == 200, body

    def shipments(self, shipping: Service) -> dict[str, Any]:
        status, body = call("GET", f"{shipping.url}/shipments")
        assert status == 200, body
        return {s["order_id"]: s for s in body["shipments"]}

    def published_shipments(self) -> Counter[str]:
        return Counter((r.key or b"").decode() for r in self.broker.records(SHIPMENTS))


def test_orders_succeed_while_shipping_is_down_and_each_ships_exactly_once(shop: Shop) -> None:
    orders = shop.start(OrdersService)
    customers = shop.start(CustomersService)
    shipping = shop.start(ShippingService, data_dir=shop.tmp / "shipping")
    shop.customer(customers, "ann", "1 First St")
    shop.customer(customers, "ben", "2 Second St")
    before = [shop.order(orders, "ann"), shop.order(orders, "ben")]
    shop.caught_up(shipping)
    assert sorted(shop.shipments(shipping)) == sorted(before)

    shop.stop(shipping)
    during = [shop.order(orders, ("ann", "ben")[i % 2], cents=100 + i) for i in range(12)]

    shipping = shop.start(ShippingService, data_dir=shop.tmp / "shipping")
    shop.caught_up(shipping)
    shipments = shop.shipments(shipping)
    assert sorted(shipments) == sorted(before + during)
    assert {s["address_line"] for oid, s in shipments.items() if oid in during} == {
        "1 First St, 1 Town", "2 Second St, 1 Town"}
    published = shop.published_shipments()
    assert sorted(published) == sorted(before + during)
    assert set(published.values()) == {1}


def test_an_address_change_reaches_shipping_and_later_orders_use_it(shop: Shop) -> None:
    orders = shop.start(OrdersService)
    customers = shop.start(CustomersService)
    shipping = shop.start(ShippingService)
    shop.customer(customers, "ann", "1 Old Road")
    first = shop.order(orders, "ann")
    shop.caught_up(shipping)  # shipped before the move (topics are not ordered together)
    status, _ = call("PUT", f"{customers.url}/customers/ann/address",
                     {"street": "9 New Road", "city": "City", "zip": "2"})
    assert status == 200
    deadline = time.monotonic() + 10  # eventual consistency, with a deadline
    while call("GET", f"{shipping.url}/addresses/ann")[1].get("street") != "9 New Road":
        assert time.monotonic() < deadline, "the change never reached shipping"
        time.sleep(0.02)
    second = shop.order(orders, "ann")
    shop.caught_up(shipping)
    shipments = shop.shipments(shipping)
    assert shipments[first]["address_line"] == "1 Old Road, 1 Town"
    assert shipments[second]["address_line"] == "9 New Road, 2 City"
    # customers reads its own writes
    assert call("GET", f"{customers.url}/customers/ann")[1]["address"]["street"] == "9 New Road"


def test_orders_wait_for_a_customer_shipping_has_not_heard_of(shop: Shop) -> None:
    orders = shop.start(OrdersService)
    customers = shop.start(CustomersService)
    shipping = shop.start(ShippingService)
    early = shop.order(orders, "zoe")
    shop.caught_up(shipping)
    status, body = call("GET", f"{shipping.url}/shipments")
    assert [h["order_id"] for h in body["held"]] == [early]
    shop.customer(customers, "zoe", "5 Late Lane")
    shop.caught_up(shipping)
    assert shop.shipments(shipping)[early]["address_line"] == "5 Late Lane, 1 Town"
    assert call("GET", f"{shipping.url}/shipments")[1]["held"] == []
    # a deletion is a tombstone in the compacted topic; shipping forgets the address
    assert call("DELETE", f"{customers.url}/customers/zoe")[0] == 200
    shop.caught_up(shipping)
    assert call("GET", f"{shipping.url}/addresses/zoe")[0] == 404
    assert call("GET", f"{customers.url}/customers/zoe")[0] == 404


def test_statistics_started_last_computes_totals_over_all_past_orders(shop: Shop) -> None:
    # history from before the orders service existed: version-1 records, upcast on read
    with Publisher(shop.bootstrap, legacy) as old:
        old.publish(ORDERS, OrderPlacedV1("o-old", "ann", "tea", 2, 1.25), key="o-old")
        old.publish(CUSTOMER_UPDATES, CustomerChangedV1("ann", "Ann", "1 Road, 99 Town"),
                    key="ann")
    orders = shop.start(OrdersService)
    placed = [(f"c{i % 3}", 1 + i % 4, 100 * (i + 1)) for i in range(20)]
    for cid, qty, cents in placed:
        shop.order(orders, cid, sku=f"sku{qty}", qty=qty, cents=cents)
    stats_service = shop.start(StatisticsService)
    shop.caught_up(stats_service)
    stats = call("GET", f"{stats_service.url}/stats")[1]
    assert stats["orders"] == 21
    assert stats["revenue_cents"] == 250 + sum(q * c for _, q, c in placed)
    assert stats["items"] == 2 + sum(q for _, q, _ in placed)
    assert stats["customers"]["ann"] == {"orders": 1, "revenue_cents": 250}
    assert stats["skus"]["tea"] == 2
    # and shipping, started now, ships the old order to the upcast address too
    shipping = shop.start(ShippingService)
    shop.caught_up(shipping)
    assert shop.shipments(shipping)["o-old"]["address_line"] == "1 Road, 99 Town"


def test_bad_requests_are_refused(shop: Shop) -> None:
    orders = shop.start(OrdersService)
    customers = shop.start(CustomersService)
    assert call("POST", f"{orders.url}/orders", {"customer_id": "x", "lines": []})[0] == 400
    assert call("POST", f"{orders.url}/orders", {"lines": [{"sku": "a"}]})[0] == 400
    assert call("POST", f"{customers.url}/customers", {"name": "x"})[0] == 400
    assert call("PUT", f"{customers.url}/customers/nobody/address",
                {"street": "s", "city": "c", "zip": "z"})[0] == 404
