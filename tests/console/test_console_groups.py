"""Consumer groups in the browser: lag rising and falling live, reset offsets
(dry run, refused while members are active, then applied), delete; and the
banner while the broker restarts."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from strom.testing import EmbeddedBroker
from tests.console.conftest import ConsoleServer


def lag_total(page: Any) -> int:
    return int(page.locator("#lag-total").inner_text())


def wait_lag(page: Any, expected: int) -> None:
    """The page's live lag reaches `expected` without a reload."""
    page.wait_for_function(f"document.getElementById('lag-total').textContent === '{expected}'")


def consume(consumer: Consumer, count: int, deadline_s: float = 30) -> None:
    """Read `count` records and commit synchronously."""
    got = 0
    deadline = time.monotonic() + deadline_s
    while got < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            got += 1
    assert got == count
    consumer.commit(asynchronous=False)


def produce(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(count):
        producer.produce(topic, key=b"k%d" % i, value=b"v%d" % i)
    assert producer.flush(10) == 0


def test_group_lag_rises_and_falls_then_reset_and_delete(page: Any,
                                                        broker: EmbeddedBroker) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("payments", 1, 1)])["payments"].result(10)
    produce(broker.bootstrap, "payments", 20)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "billing",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe(["payments"])
    try:
        consume(consumer, 5)
        page.goto("/groups")
        listed = page.locator("#groups tr[data-group=billing]")
        assert listed.locator(".lag").inner_text() == "15"
        assert "payments" in listed.inner_text()
        listed.get_by_role("link", name="billing").click()
        expect_state = page.locator("#state")
        assert expect_state.inner_text() == "STABLE"
        assert lag_total(page) == 15
        assert page.locator("#members tbody tr").count() == 1
        # Lag falls while the page is open...
        consume(consumer, 15)
        wait_lag(page, 0)
        # ...and rises.
        produce(broker.bootstrap, "payments", 10)
        wait_lag(page, 10)
        page.wait_for_function(
            "document.querySelector('[data-chart]').dataset.points >= 3")
        assert page.locator("[data-row='payments/0'] [data-col=lag]").inner_text() == "10"

        # A reset: the dry run shows the plan; applying it with a live member is refused.
        page.select_option("#r-to", "earliest")
        page.get_by_role("button", name="Dry run").click()
        assert page.locator("#plan tbody tr").inner_text().split() == ["payments", "0", "20", "0"]
        page.get_by_role("button", name="Apply this reset").click()
        assert re.search("stop its consumers first", page.locator("#error").inner_text())
        assert broker.committed_offsets("billing")[("payments", 0)] == 20
    finally:
        consumer.close()

    # Once empty, the reset applies (shift by -5 from the committed 20).
    page.goto("/groups/billing")
    page.wait_for_function("document.getElementById('state').textContent === 'EMPTY'")
    page.select_option("#r-to", "shift")
    page.fill("#r-value", "-5")
    page.get_by_role("button", name="Dry run").click()
    assert page.locator("#plan tbody tr").inner_text().split() == ["payments", "0", "20", "15"]
    assert broker.committed_offsets("billing")[("payments", 0)] == 20
    page.get_by_role("button", name="Apply this reset").click()
    assert "reset" in page.locator("#reset-done").inner_text()
    assert broker.committed_offsets("billing")[("payments", 0)] == 15
    wait_lag(page, 15)

    # Bad reset input is a message on the page.
    page.select_option("#r-to", "offset")
    page.fill("#r-value", "ten")
    page.get_by_role("button", name="Dry run").click()
    assert "offset: 'ten' is not a whole number" in page.locator("#error").inner_text()

    # Delete, confirmed by name.
    page.fill("#g-confirm", "billing")
    page.get_by_role("button", name="Delete group").click()
    assert "Group billing deleted" in page.locator("#deleted").inner_text()
    assert page.locator("#groups a", has_text="billing").count() == 0


@pytest.fixture
def own_broker() -> Any:
    b = EmbeddedBroker().start()
    try:
        yield b
    finally:
        b.stop()


def test_banner_while_the_broker_restarts(browser: Any, own_broker: EmbeddedBroker) -> None:
    server = ConsoleServer(own_broker.bootstrap, sample_s=0.3)
    server.cluster.timeout = 2.0
    server.start()
    context = browser.new_context(base_url=server.url)
    context.set_default_timeout(30_000)
    try:
        page = context.new_page()
        page.goto("/")
        page.wait_for_function("Number(document.body.dataset.liveUpdates || 0) >= 1")
        assert page.locator("#banner").is_hidden()
        own_broker.stop()
        page.wait_for_selector("#banner", state="visible")
        assert "broker unreachable, reconnecting" in page.locator("#banner").inner_text()
        own_broker.start()
        page.wait_for_selector("#banner", state="hidden")
        before = int(page.locator("body").get_attribute("data-live-updates") or 0)
        page.wait_for_function(f"Number(document.body.dataset.liveUpdates) > {before}")
    finally:
        context.close()
        server.stop()


def test_group_ids_with_slashes_and_spaces(page: Any, broker: EmbeddedBroker) -> None:
    from confluent_kafka import TopicPartition

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("odd-names", 1, 1)])["odd-names"].result(10)
    produce(broker.bootstrap, "odd-names", 4)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "team a/ü?x"})
    consumer.commit(offsets=[TopicPartition("odd-names", 0, 1)], asynchronous=False)
    consumer.close()
    page.goto("/groups")
    page.get_by_role("link", name="team a/ü?x").click()
    assert page.locator("h1").inner_text() == "Group team a/ü?x"
    wait_lag(page, 3)
    page.select_option("#r-to", "latest")
    page.get_by_role("button", name="Dry run").click()
    page.get_by_role("button", name="Apply this reset").click()
    assert "reset" in page.locator("#reset-done").inner_text()
    assert broker.committed_offsets("team a/ü?x")[("odd-names", 0)] == 4
    page.fill("#g-confirm", "team a/ü?x")
    page.get_by_role("button", name="Delete group").click()
    assert "team a/ü?x deleted" in page.locator("#deleted").inner_text()
