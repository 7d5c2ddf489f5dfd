"""Screenshots of the web console's main pages for the README and docs
(`make screenshots`): a throw-away strom with a little data, the console, and
Debian's headless chromium through Playwright. Writes docs/img/console-*.png."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from strom.testing import EmbeddedBroker  # noqa: E402
from tests.console.conftest import CHROMIUM, ConsoleServer  # noqa: E402

OUT = ROOT / "docs" / "img"


def seed(bootstrap: str, stop: threading.Event) -> None:
    """Orders arriving steadily (the live throughput) until `stop`."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    n = 0
    while not stop.is_set():
        for _ in range(50):
            n += 1
            order = {"order_id": n, "customer": {"id": n % 17, "country": "SE"},
                     "items": [{"sku": f"SKU-{n % 5}", "qty": 1 + n % 3}], "total": 19.5}
            producer.produce("orders", key=f"customer-{n % 17}".encode(),
                             value=json.dumps(order).encode(),
                             headers=[("source", b"checkout"), ("schema", b"order.v1")])
        producer.poll(0)
        stop.wait(0.1 + (n % 400) / 2000)
    producer.flush(10)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    broker = EmbeddedBroker().start()
    server = ConsoleServer(broker.bootstrap, sample_s=1.0).start()
    stop = threading.Event()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        for f in admin.create_topics([NewTopic("orders", 3, 1), NewTopic("payments", 2, 1),
                                      NewTopic("audit-log", 1, 1,
                                               config={"cleanup.policy": "compact"})]).values():
            f.result(10)
        feeder = threading.Thread(target=seed, args=(broker.bootstrap, stop), daemon=True)
        feeder.start()
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "billing",
                             "auto.offset.reset": "earliest", "client.id": "billing-1"})
        consumer.subscribe(["orders"])
        deadline = time.monotonic() + 20
        got = 0
        while got < 300 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            got += msg is not None and msg.error() is None
        consumer.commit(asynchronous=False)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=["--no-sandbox", "--disable-dev-shm-usage"])
            page = browser.new_page(base_url=server.url, viewport={"width": 1280, "height": 800})
            page.goto("/")
            page.wait_for_function("document.querySelector('[data-chart]').dataset.points >= 12",
                                   timeout=60_000)
            page.screenshot(path=str(OUT / "console-overview.png"))
            page.goto("/topics")
            page.wait_for_function("Number(document.body.dataset.liveUpdates || 0) >= 2")
            page.screenshot(path=str(OUT / "console-topics.png"))
            page.goto("/topics/orders/messages?start=end&limit=6&path=customer.country"
                      "&equals=SE")
            page.screenshot(path=str(OUT / "console-messages.png"), full_page=False)
            page.goto("/groups/billing")
            page.wait_for_function("document.querySelector('[data-chart]').dataset.points >= 10",
                                   timeout=60_000)
            page.screenshot(path=str(OUT / "console-group.png"), full_page=True)
            browser.close()
        consumer.close()
    finally:
        stop.set()
        server.stop()
        broker.stop()
    for png in sorted(OUT.glob("console-*.png")):
        print(png.relative_to(ROOT))


if __name__ == "__main__":
    main()
