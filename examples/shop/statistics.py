"""Statistics service: added late, it reads the whole `orders` history.

Nobody had to plan for it: the orders were published once and kept, so a
new service replays them from the beginning and serves totals. By default
its view lives in memory and is restored at every start (watch the progress
lines); with --data-dir it persists and resumes instead.

    GET /stats   {"orders", "revenue_cents", "items", "customers": {...}, "skus": {...}}

    python -m examples.shop.statistics --bootstrap localhost:9092 --port 8004
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from examples.shop.events import ORDERS, OrderPlaced, registry
from examples.shop.service import Service, main
from strom.views import Context, MemoryStore, SQLiteStore, View, ViewStore


def statistics_view(bootstrap: str, store: ViewStore) -> View:
    view = View("statistics", bootstrap=bootstrap, topics=[ORDERS], registry=registry,
                store=store, progress_interval=1.0)

    @view.on(OrderPlaced)
    def order_placed(event: OrderPlaced, ctx: Context) -> None:
        total = event.total_cents
        items = sum(line.quantity for line in event.lines)
        t = ctx.get("totals", "all") or {"orders": 0, "revenue_cents": 0, "items": 0}
        ctx.put("totals", "all", {"orders": t["orders"] + 1,
                                  "revenue_cents": t["revenue_cents"] + total,
                                  "items": t["items"] + items})
        c = ctx.get("customers", event.customer_id) or {"orders": 0, "revenue_cents": 0}
        ctx.put("customers", event.customer_id,
                {"orders": c["orders"] + 1, "revenue_cents": c["revenue_cents"] + total})
        for line in event.lines:
            ctx.put("skus", line.sku, (ctx.get("skus", line.sku) or 0) + line.quantity)

    return view


class StatisticsService(Service):
    name = "statistics"

    def __init__(self, bootstrap: str, *, data_dir: Path | None = None, **kwargs: Any) -> None:
        super().__init__(bootstrap, data_dir=data_dir, **kwargs)
        self._store = SQLiteStore(data_dir / "statistics.db") if data_dir else MemoryStore()
        self.view = statistics_view(bootstrap, self._store)
        self.views.append(self.view)
        self.http.route("GET", "/stats")(self.stats)

    def stats(self, groups: tuple[str, ...], query: dict[str, str],
              body: Any) -> tuple[int, Any]:
        with self.view.snapshot() as snap:
            totals = snap.get("totals", "all") or {"orders": 0, "revenue_cents": 0, "items": 0}
            customers = dict(snap.items("customers"))
            skus = dict(snap.items("skus"))
        return 200, {**totals, "customers": customers, "skus": skus,
                     "state": self.view.state.value}

    def stop(self) -> None:
        super().stop()
        self._store.close()


if __name__ == "__main__":
    def build(args: argparse.Namespace) -> Service:
        return StatisticsService(args.bootstrap, host=args.host, port=args.port,
                                 data_dir=args.data_dir)

    raise SystemExit(main(build, "The shop's statistics service"))
