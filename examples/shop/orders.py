"""Orders service: accepts orders over HTTP and publishes OrderPlaced to `orders`.

It never calls another service: it does not check that the customer exists
or where they live. That is shipping's business, from its own view.

    POST /orders  {"customer_id": "c-1", "lines": [{"sku": "tea", "quantity": 2,
                   "unit_price_cents": 450}], "order_id": "optional, for retries"}
      -> 201 {"order_id": ..., "partition": ..., "offset": ...}

    python -m examples.shop.orders --bootstrap localhost:9092 --port 8001
"""

from __future__ import annotations

import argparse
import datetime as dt
import uuid
from typing import Any

from examples.shop.events import ORDERS, OrderLine, OrderPlaced, ensure_topics, registry
from examples.shop.service import Service, main
from examples.shop.web import HttpError
from strom.views import BrokerUnavailable, Publisher, PublishError


class OrdersService(Service):
    name = "orders"

    def __init__(self, bootstrap: str, **kwargs: Any) -> None:
        super().__init__(bootstrap, **kwargs)
        ensure_topics(bootstrap)
        self.publisher = Publisher(bootstrap, registry, request_timeout=10)
        self.http.route("POST", "/orders")(self.place)

    def place(self, groups: tuple[str, ...], query: dict[str, str],
              body: Any) -> tuple[int, Any]:
        order = parse_order(body)
        try:
            delivery = self.publisher.publish(ORDERS, order, key=order.order_id)
        except (PublishError, BrokerUnavailable) as exc:
            raise HttpError(503, f"order not accepted: {exc}") from None
        return 201, {"order_id": order.order_id, "total_cents": order.total_cents,
                     "partition": delivery.partition, "offset": delivery.offset}

    def stop(self) -> None:
        super().stop()
        self.publisher.close(5)


def parse_order(body: Any) -> OrderPlaced:
    if not isinstance(body, dict):
        raise HttpError(400, "expected a JSON object")
    customer_id = body.get("customer_id")
    lines = body.get("lines")
    if not isinstance(customer_id, str) or not customer_id:
        raise HttpError(400, "customer_id is required")
    if not isinstance(lines, list) or not lines:
        raise HttpError(400, "lines must be a non-empty list")
    parsed = []
    for line in lines:
        try:
            parsed.append(OrderLine(str(line["sku"]), int(line["quantity"]),
                                    int(line["unit_price_cents"])))
        except (KeyError, TypeError, ValueError):
            raise HttpError(400, f"bad line {line!r}") from None
        if parsed[-1].quantity <= 0 or parsed[-1].unit_price_cents < 0:
            raise HttpError(400, f"bad quantity or price in {line!r}")
    order_id = body.get("order_id") or f"o-{uuid.uuid4().hex[:10]}"
    return OrderPlaced(str(order_id), customer_id, parsed,
                       dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))


if __name__ == "__main__":
    def build(args: argparse.Namespace) -> Service:
        return OrdersService(args.bootstrap, host=args.host, port=args.port)

    raise SystemExit(main(build, "The shop's orders service"))
