"""SaslAuthenticate: one SASL token each way.

Versions: 0-2. v1+ carries session_lifetime_ms once authentication completes
(KIP-368: min(connections.max.reauth.ms, the credential's expiry), 0 when the
session does not expire). A refused client gets SASL_AUTHENTICATION_FAILED
with Kafka's message after connection.failed.authentication.delay.ms, and the
connection closes. Out of order (no SaslHandshake before it, or on a
connection already authenticated) it is answered ILLEGAL_SASL_STATE.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.errors import ErrorCode, IllegalSaslStateError, SaslAuthenticationError
from strom.protocol.api import ApiKey

log = logging.getLogger(__name__)


def _failed(code: ErrorCode, message: str) -> dict[str, Any]:
    return {"error_code": code, "error_message": message, "auth_bytes": b"",
            "session_lifetime": 0}


@handles(ApiKey.SASL_AUTHENTICATE)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    sasl = ctx.sasl
    if sasl is None or sasl.authenticated:
        return _failed(ErrorCode.illegal_sasl_state,
                       "SaslAuthenticate request received after successful authentication")
    try:
        result = await sasl.authenticate(bytes(request.auth_bytes))
    except IllegalSaslStateError as exc:
        ctx.close_after_response = True
        return _failed(exc.code, str(exc))
    except SaslAuthenticationError as exc:
        ctx.close_after_response = True
        # As Kafka's "Failed authentication with /host" (INFO): who, not the password.
        log.info("failed authentication with %s (listener %s, %s): %s", ctx.client_host,
                 ctx.listener_name, sasl.mechanism, exc)
        # Kafka delays the answer to slow down password guessing.
        await asyncio.sleep(sasl.settings.failed_authentication_delay_ms / 1000)
        return _failed(exc.code, str(exc))
    return {"error_code": ErrorCode.none, "error_message": None,
            "auth_bytes": result.auth_bytes, "session_lifetime": result.session_lifetime_ms}
