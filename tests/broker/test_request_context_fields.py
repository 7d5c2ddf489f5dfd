"""The connection builds each RequestContext positionally (keywords cost
~0.2 us per request, issue 19): the fields must keep the order it passes."""

from __future__ import annotations

import dataclasses

from strom.broker.context import RequestContext


def test_fields_in_the_order_the_connection_passes_them() -> None:
    names = [field.name for field in dataclasses.fields(RequestContext)]
    assert names[:9] == ["header", "broker", "close_connection", "client_host", "forwarded",
                         "principal", "listener_name", "security_protocol", "sasl"]
