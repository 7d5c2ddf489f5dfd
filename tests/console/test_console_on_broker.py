"""The broker serves the console on its own HTTP listener (strom.console.enable)."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from strom.testing import EmbeddedBroker


@pytest.fixture
def served() -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker(overrides={"strom.http.listener": "http://127.0.0.1:0",
                                  "strom.console.enable": "true"}).start()
    try:
        yield b
    finally:
        b.stop()


def test_broker_serves_the_console_next_to_metrics(browser: Any,
                                                   served: EmbeddedBroker) -> None:
    context = browser.new_context(base_url=served.http_url)
    context.set_default_timeout(20_000)
    try:
        page = context.new_page()
        page.goto("/topics")
        page.fill("#name", "served")
        page.get_by_role("button", name="Create topic").click()
        page.wait_for_url("**/topics/served?created=1")
        page.goto("/")
        assert page.locator("[data-field=brokers]").inner_text() == "1"
        assert served.bootstrap.split(":")[1] in page.locator("header .cluster").inner_text()
        page.wait_for_function("Number(document.body.dataset.liveUpdates || 0) >= 1")
        with urllib.request.urlopen(served.http_url + "/metrics") as response:
            assert response.status == 200
        # The open live page (a request that never ends) does not hold up the
        # broker's stop: the fixture's stop() would time out after 30 s.
    finally:
        served.stop()
        context.close()


def test_console_off_by_default() -> None:
    b = EmbeddedBroker(overrides={"strom.http.listener": "http://127.0.0.1:0"}).start()
    try:
        with pytest.raises(urllib.error.HTTPError) as failure:
            urllib.request.urlopen(b.http_url + "/topics")
        assert failure.value.code == 404
    finally:
        b.stop()
