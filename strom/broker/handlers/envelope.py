"""Envelope: a client's admin request forwarded by a broker to the controller (KIP-590).

Version 0. A broker-to-controller API: Kafka serves it on the controller
listener only, so it is handled here but not advertised to clients in
ApiVersions. Only the controller answers (NOT_CONTROLLER elsewhere); an
Envelope from anything but a registered broker closes its connection. The
rules and the forwarding broker's side: broker/forwarding.py.
"""

from __future__ import annotations

from typing import Any

from strom.broker.context import RequestContext
from strom.broker.forwarding import serve_envelope
from strom.broker.router import Response, handles
from strom.protocol.api import ApiKey


@handles(ApiKey.ENVELOPE, advertised=False)
async def handle(ctx: RequestContext, request: Any) -> Response:
    return await serve_envelope(ctx, request)
