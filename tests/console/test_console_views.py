"""The views page shows a strom.views view that reports to the broker (outputs in
Kafka transactions): its name, position and lag, live from the broker."""

from __future__ import annotations

from typing import Any

from strom.testing import EmbeddedBroker
from strom.views import MemoryStore, Publisher
from tests.views.helpers import create_topic, publish_deposits, registry, unique
from tests.views.test_outbox import echo_view


def test_views_page_shows_a_transactional_view(page: Any, broker: EmbeddedBroker) -> None:
    source = create_topic(broker.bootstrap, unique("src"), partitions=1)
    out = create_topic(broker.bootstrap, unique("out"), partitions=1)
    with Publisher(broker.bootstrap, registry()) as publisher:
        publish_deposits(publisher, source, 0, 30)
        with echo_view(broker.bootstrap, source, out, MemoryStore(),
                       transactional_id=unique("echo"), request_timeout=20) as view:
            view.catch_up(timeout=60)
        publish_deposits(publisher, source, 30, 10)
    page.goto("/")
    page.get_by_role("link", name="Views").click()
    row = page.locator("#views tr[data-view=echo]")
    assert f"{source}-0@30" in row.inner_text()
    assert row.locator(".lag").inner_text() == "10"
    assert "behind" in row.inner_text()


def test_views_page_lists_no_helper_groups() -> None:
    from strom.console.pages_groups import view_name

    assert view_name("strom-view-orders") == "orders"
    assert view_name("strom-view-orders-outbox") is None
    assert view_name("strom-view-orders-query") is None
    assert view_name("billing") is None
