"""kill -9 the shipping process at random points while it applies events; after
a restart its shipments and the `shipments` topic match a model exactly."""

from __future__ import annotations

import os
import random
import sqlite3
import sys
import time
from collections import Counter
from pathlib import Path

from examples.shop.demo import Process
from examples.shop.events import (
    CUSTOMER_UPDATES,
    ORDERS,
    SHIPMENTS,
    Address,
    CustomerChanged,
    OrderLine,
    OrderPlaced,
    ensure_topics,
    registry,
)
from examples.shop.web import call
from strom.testing import EmbeddedBroker
from strom.views import Publisher

ORDERS_COUNT = 600
CUSTOMERS = 12


def shipments_in_store(path: Path) -> int:
    """Shipments committed so far (read-only, while the process may be running)."""
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            generation = conn.execute(
                "SELECT value FROM strom_meta WHERE key = 'generation'").fetchone()[0]
            return int(conn.execute(f"SELECT count(*) FROM strom_kv_{int(generation)} "
                                    "WHERE tbl = 'shipments'").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_kill_9_at_random_points_never_loses_or_repeats(strom_broker: EmbeddedBroker,
                                                        tmp_path: Path) -> None:
    bootstrap = strom_broker.bootstrap
    ensure_topics(bootstrap)
    model: dict[str, str] = {}
    with Publisher(bootstrap, registry) as publisher:
        addresses = {}
        for i in range(CUSTOMERS):
            address = Address(f"{i} Crash Street", "Kill Town", f"{9000 + i}")
            addresses[f"c{i}"] = address
            publisher.publish(CUSTOMER_UPDATES, CustomerChanged(f"c{i}", f"C{i}", address),
                              key=f"c{i}")
        futures = []
        for n in range(ORDERS_COUNT):
            order = OrderPlaced(f"o{n}", f"c{n % CUSTOMERS}", [OrderLine("tea", 1, 100)],
                                "2026-01-01T00:00:00+00:00")
            futures.append(publisher.publish_async(ORDERS, order, key=order.order_id))
            model[order.order_id] = addresses[order.customer_id].line()
        for f in futures:
            f.result(30)

    seed = int(os.environ.get("SHOP_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    data_dir = tmp_path / "shipping"
    argv = [sys.executable, "-m", "examples.shop.shipping", "--bootstrap", bootstrap,
            "--data-dir", str(data_dir), "--max-batch", "25", "--apply-delay", "0.002",
            "--log-level", "WARNING"]
    db = data_dir / "shipping.db"
    kills = []
    # kill at random points while it applies: once it has committed a random number
    # of shipments, plus a random sliver of time
    for target in sorted(rng.sample(range(1, ORDERS_COUNT - 100), 4)):
        proc = Process("shipping", argv, tmp_path).start()
        try:
            deadline = time.monotonic() + 30
            while shipments_in_store(db) < target:
                assert time.monotonic() < deadline, f"shipping stalled below {target}"
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.03))
        finally:
            proc.kill()  # SIGKILL: no flush, no goodbye
        kills.append(shipments_in_store(db))
    assert kills[-1] < ORDERS_COUNT, f"every kill came too late (seed {seed}): {kills}"

    proc = Process("shipping", argv[:-4] + ["--log-level", "WARNING"], tmp_path).start()
    try:
        status, body = call("GET", f"{proc.url}/health/caught-up?timeout=60", timeout=70)
        assert status == 200, body
        status, body = call("GET", f"{proc.url}/shipments")
    finally:
        proc.stop()
    shipments = {s["order_id"]: s["address_line"] for s in body["shipments"]}
    assert body["held"] == []
    assert shipments == model, f"seed {seed}"
    published = Counter((r.key or b"").decode() for r in strom_broker.records(SHIPMENTS))
    assert sorted(published) == sorted(model), f"lost shipments (seed {seed})"
    duplicated = {k: n for k, n in published.items() if n > 1}
    assert duplicated == {}, f"published twice (seed {seed}): {duplicated}"
