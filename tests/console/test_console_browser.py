"""The console clicked through in headless Chromium against a live strom:
topics, produce, browse and filter, configs, delete with confirmation, bad input."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any

from confluent_kafka import Producer

from strom.testing import EmbeddedBroker
from tests.console.conftest import ConsoleServer


def expect_text(page: Any, selector: str, pattern: str) -> None:
    from playwright.sync_api import expect

    expect(page.locator(selector)).to_contain_text(re.compile(pattern))


def test_overview_shows_brokers_and_live_throughput(page: Any, broker: EmbeddedBroker) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto("/")
    expect_text(page, "[data-field=brokers]", "^1$")
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    # The live numbers arrive over SSE without a reload: wait for a non-zero rate
    # while records keep arriving (bounded: 40 rounds of 100 records).
    for _ in range(40):
        for i in range(100):
            producer.produce("overview-rate", value=b"x%d" % i)
        producer.flush(10)
        text = page.locator("#rate-total").inner_text()
        if text not in ("…", "0", "0.0"):
            break
        page.wait_for_timeout(250)
    assert float(page.locator("#rate-total").inner_text()) > 0
    assert int(page.locator("body").get_attribute("data-live-updates") or 0) >= 1
    page.wait_for_function("document.querySelector('[data-chart]').dataset.points >= 2")
    assert errors == []


def test_create_produce_browse_filter_config_delete(page: Any) -> None:
    page.goto("/topics")
    # Keyboard only: the skip link is the first stop, the form submits with Enter.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.fill("#name", "orders")
    page.fill("#partitions", "3")
    page.fill("#configs", "retention.ms=86400000")
    page.press("#configs", "Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/topics/orders\?created=1$"))
    assert page.locator("#partitions tbody tr").count() == 3

    # Produce from the UI: key, headers, JSON value.
    page.get_by_role("link", name="Produce a message").click()
    page.fill("#p-key", "customer-7")
    page.fill("#p-headers", "source: console\ntrace: abc")
    page.fill("#p-value", json.dumps({"order": {"id": 42, "sku": "A-1"}}))
    page.get_by_role("button", name="Produce").click()
    expect_text(page, "#produced", r"Produced at partition:offset \d+:0")
    page.fill("#p-key", "customer-8")
    page.fill("#p-value", "plain text value")
    page.get_by_role("button", name="Produce").click()
    page.fill("#p-key", "")
    page.fill("#p-value", "x" * 3000)
    page.get_by_role("button", name="Produce").click()

    # Browse from the beginning: all three, JSON pretty-printed, headers shown.
    page.select_option("#start", "beginning")
    page.select_option("#partition", "all")
    page.get_by_role("button", name="Show messages").click()
    assert page.locator("#messages tr.message").count() == 3
    row = page.locator("#messages tr.message", has_text="customer-7")
    expect_text(row, ".headers", "source: console")
    expect_text(row, ".headers", "trace: abc")
    assert '"sku": "A-1"' in row.locator(".value pre").inner_text()
    long_row = page.locator("#messages tr.message", has=page.locator("details"))
    long_row.locator("summary").click()
    assert "x" * 3000 in long_row.locator("details pre").inner_text()

    # Filters: by key, by text, by JSON path (with and without a value).
    for field, value, expected in [("#key", "customer-8", "plain text value"),
                                   ("#text", "plain", "customer-8"),
                                   ("#path", "order.sku", "customer-7")]:
        page.fill("#key", "")
        page.fill("#text", "")
        page.fill("#path", "")
        page.fill(field, value)
        page.get_by_role("button", name="Show messages").click()
        assert page.locator("#messages tr.message").count() == 1, (field, value)
        expect_text(page, "#messages", expected)
    page.fill("#equals", '"B-2"')
    page.get_by_role("button", name="Show messages").click()
    expect_text(page, "#messages", "No messages match")
    page.fill("#equals", "A-1")
    page.get_by_role("button", name="Show messages").click()
    assert page.locator("#messages tr.message").count() == 1

    # From a time: everything after 2000, nothing after 2100; from an offset.
    page.fill("#path", "")
    page.fill("#equals", "")
    page.select_option("#start", "timestamp")
    page.fill("#timestamp", "2000-01-01T00:00:00Z")
    page.get_by_role("button", name="Show messages").click()
    assert page.locator("#messages tr.message").count() == 3
    page.fill("#timestamp", "4102444800000")
    page.get_by_role("button", name="Show messages").click()
    assert page.locator("#messages tr.message").count() == 0
    page.select_option("#start", "offset")
    page.fill("#offset", "1")
    page.get_by_role("button", name="Show messages").click()
    offsets = page.locator("#messages tr.message td:nth-child(2)").all_inner_texts()
    assert len(offsets) < 3 and all(int(o) >= 1 for o in offsets)
    page.fill("#path", "order.sku")
    page.fill("#equals", "A-1")
    page.select_option("#start", "beginning")
    page.get_by_role("button", name="Show messages").click()

    # The download holds the same records as JSON lines.
    href = page.get_by_role("link", name="Download as JSON lines").get_attribute("href")
    with urllib.request.urlopen(page.url.split("/topics")[0] + str(href)) as response:
        lines = [json.loads(line) for line in response.read().decode().splitlines()]
    assert [line["key"] for line in lines] == ["customer-7"]
    assert json.loads(lines[0]["value"])["order"]["id"] == 42

    # Sizes on disk (DescribeLogDirs): the 3000-byte value is in one partition.
    page.goto("/topics/orders")
    sizes = page.locator("#partitions td.size").all_inner_texts()
    assert any(re.fullmatch(r"[3-9]\.\d KiB", size) for size in sizes), sizes
    page.goto("/topics")
    assert re.fullmatch(r"\d+\.\d KiB", page.locator("#topics tr", has_text="orders")
                        .locator("td.size").inner_text())

    # Edit a config: shown with its source.
    page.goto("/topics/orders/configs")
    expect_text(page, "[data-config='retention.ms']", "86400000.*topic override")
    page.select_option("#cfg-name", "cleanup.policy")
    page.fill("#cfg-value", "compact")
    page.get_by_role("button", name="Set").click()
    expect_text(page, "#changed", "cleanup.policy changed")
    expect_text(page, "[data-config='cleanup.policy']", "compact.*topic override")
    page.select_option("#cfg-name", "cleanup.policy")
    page.get_by_role("button", name="Back to default").click()
    expect_text(page, "[data-config='cleanup.policy']", "delete.*default")
    page.select_option("#cfg-name", "retention.ms")
    page.fill("#cfg-value", "not-a-number")
    page.get_by_role("button", name="Set").click()
    expect_text(page, "#error", "retention.ms")

    # Delete with a confirmation step: a wrong name deletes nothing.
    page.goto("/topics/orders")
    page.get_by_role("link", name="Delete topic").click()
    page.fill("#confirm", "order")
    page.get_by_role("button", name="Delete orders").click()
    expect_text(page, "#error", "type the topic's name")
    page.fill("#confirm", "orders")
    page.get_by_role("button", name="Delete orders").click()
    expect_text(page, "#deleted", "Topic orders deleted")
    assert page.locator("#topics a", has_text=re.compile("^orders$")).count() == 0
    response = page.goto("/topics/orders")
    assert response is not None and response.status == 404


def test_bad_input_shows_a_message_not_a_500(page: Any, console: ConsoleServer,
                                             broker: EmbeddedBroker) -> None:
    page.goto("/topics")
    page.fill("#name", "bad input!")
    page.get_by_role("button", name="Create topic").click()
    expect_text(page, "#error", "topic name")
    page.fill("#name", "inputs")
    page.fill("#partitions", "two")
    page.get_by_role("button", name="Create topic").click()
    expect_text(page, "#error", "partitions: 'two' is not a whole number")
    page.fill("#partitions", "2")
    page.get_by_role("button", name="Create topic").click()
    page.wait_for_url(re.compile("/topics/inputs"))

    page.goto("/topics/inputs/messages")
    page.select_option("#start", "offset")
    page.fill("#offset", "-5")
    page.get_by_role("button", name="Show messages").click()
    expect_text(page, "#error", "offset: -5 is out of range")
    page.select_option("#start", "timestamp")
    page.fill("#timestamp", "yesterday-ish")
    page.get_by_role("button", name="Show messages").click()
    expect_text(page, "#error", "timestamp: 'yesterday-ish' is neither ISO 8601")
    page.fill("#timestamp", "2020-01-01T00:00:00Z")
    page.get_by_role("button", name="Show messages").click()
    expect_text(page, "#summary", "0 message")
    page.fill("#p-headers", "no separator here")
    page.get_by_role("button", name="Produce").click()
    expect_text(page, "#error", "expected name: value")

    for path in ("/topics/no-such-topic", "/topics/no-such-topic/messages",
                 "/groups/no-such-group", "/no/such/page"):
        response = page.goto(path)
        assert response is not None and response.status == 404, path
        assert page.locator("#error").is_visible()

    # A form posted from another site is refused.
    request = urllib.request.Request(console.url + "/topics/inputs/delete", data=b"confirm=inputs",
                                     headers={"Origin": "http://evil.example"})
    try:
        urllib.request.urlopen(request)
        raise AssertionError("cross-origin form accepted")
    except urllib.error.HTTPError as exc:
        assert exc.code == 403
