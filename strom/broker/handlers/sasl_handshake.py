"""SaslHandshake: the client names its SASL mechanism.

Versions: 0-1. v1 is followed by SaslAuthenticate requests; v0 (still in
Kafka 4.x) by bare SASL tokens in size-prefixed frames, which the connection
hands to the authenticator. The response lists the listener's enabled
mechanisms; a mechanism not enabled is answered UNSUPPORTED_SASL_MECHANISM
and the connection closes. On an authenticated connection whose session
expires (KIP-368) it starts a re-authentication; otherwise, and on a
listener without SASL, it is answered ILLEGAL_SASL_STATE, as Kafka's
KafkaApis does.
"""

from __future__ import annotations

from typing import Any

from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.security.sasl.state import SaslState


@handles(ApiKey.SASL_HANDSHAKE)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    sasl = ctx.sasl
    if sasl is None:
        return {"error_code": ErrorCode.illegal_sasl_state, "mechanisms": []}
    code = sasl.handshake(request.mechanism, ctx.api_version)
    if sasl.state is SaslState.FAILED:
        ctx.close_after_response = True
    mechanisms = list(sasl.settings.mechanisms)
    if code == ErrorCode.illegal_sasl_state:
        mechanisms = []
    return {"error_code": code, "mechanisms": mechanisms}
