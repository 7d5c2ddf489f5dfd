"""Who a client connection is: its KafkaPrincipal, taken from the client's
TLS certificate (SSL listeners) or proved by a SASL exchange (SASL listeners),
and the order that exchange imposes on the connection's requests. Kafka keeps
the same in a KafkaChannel's Authenticator.

Only connections on SSL and SASL listeners have a ConnectionAuth; on a
PLAINTEXT listener the connection has none, its requests run as ANONYMOUS and
pay nothing for this (strom.broker.connection). The TLS and SASL modules
(cryptography, scramp, PyJWT) are imported by the first connection on a
listener that uses them (server.py's _listener_security has read their
settings), never on PLAINTEXT ones.

A refused client is logged here, and the connection is told to close it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from strom.broker.log_limit import LogLimiter
from strom.errors import KafkaError
from strom.protocol.headers import peek_header
from strom.security.principal import ANONYMOUS, KafkaPrincipal
from strom.security.sasl.state import Admission

if TYPE_CHECKING:
    import ssl

    from strom.broker.context import BrokerServices
    from strom.security.sasl.authenticator import SaslAuthenticator
    from strom.security.sasl.scram import CredentialLookup

__all__ = ["ConnectionAuth"]

# The connection's logger: these lines are about closing it, and the levels
# operators set for strom.broker.connection apply to them.
log = logging.getLogger("strom.broker.connection")


class ConnectionAuth:
    """One connection's principal and SASL state. `principal` is who the
    connection's requests run as; `sasl` is the SASL exchange's state, which
    the SaslHandshake and SaslAuthenticate handlers drive through the
    RequestContext (None on SSL listeners)."""

    __slots__ = ("principal", "sasl", "_serial_slot", "_peer", "_log_limit")

    def __init__(self, peer: str, log_limit: LogLimiter) -> None:
        #: ANONYMOUS until TLS or SASL authenticates the connection.
        self.principal: KafkaPrincipal = ANONYMOUS
        self.sasl: SaslAuthenticator | None = None
        # The response slot of the request that must run alone (SASL requests,
        # and every request before authentication), while it runs.
        self._serial_slot: asyncio.Future[Any] | None = None
        self._peer = peer
        self._log_limit = log_limit

    # --- when the connection is made ---------------------------------------------------

    def take_tls_principal(self, tls_principal: Callable[[ssl.SSLObject], KafkaPrincipal],
                           ssl_object: ssl.SSLObject) -> bool:
        """The principal of the client's certificate (asyncio makes the
        connection once the TLS handshake is done); False if none: the
        connection is to close."""
        from strom.security.principal_mapping import NoMatchingRuleError

        try:
            self.principal = tls_principal(ssl_object)
        except NoMatchingRuleError as exc:
            # Kafka fails the authentication (SslAuthenticationException).
            self._log_limit.warning(log, "connections refused for their certificate",
                                    "closing %s: %s", self._peer, exc)
            return False
        return True

    def start_sasl(self, broker: BrokerServices, listener_name: str) -> bool:
        """Begin the SASL exchange of a SASL listener's connection; False if
        it cannot begin: the connection is to close."""
        from strom.security.sasl.authenticator import SaslAuthenticator
        from strom.security.sasl.scram import MECHANISM_CODES

        settings = broker.sasl_listeners.get(listener_name.upper())
        if settings is None:  # cannot happen: every SASL listener's settings are built at start
            log.error("closing %s: no SASL settings for listener %s", self._peer, listener_name)
            return False

        def scram_lookup(mechanism: str) -> CredentialLookup:
            code = MECHANISM_CODES[mechanism]
            return lambda name: broker.image.scram_credentials.get(name, {}).get(code)

        self.sasl = SaslAuthenticator(settings, scram_lookup, broker.clock.wall_ms)
        return True

    # --- for each request --------------------------------------------------------------

    def allows(self, frame: bytearray | memoryview, in_flight: int) -> bool:
        """May the request in `frame` start now, with `in_flight` requests
        started and not yet answered? SASL requests, and every request before
        authentication, run alone: the authentication state each is admitted
        under is then current."""
        sasl = self.sasl
        if sasl is None or not in_flight:
            return True
        if not sasl.authenticated:
            return False
        try:
            api_key = peek_header(frame)[0]
        except KafkaError:
            return True  # the connection closes when it starts it
        return not sasl.serial(api_key) and not self._serial_in_flight()

    def _serial_in_flight(self) -> bool:
        return self._serial_slot is not None and not self._serial_slot.done()

    @property
    def raw_tokens(self) -> bool:
        """After SaslHandshake v0: the client sends bare SASL tokens, not requests."""
        return self.sasl is not None and self.sasl.raw_tokens

    def admits(self, api_key: int) -> bool:
        """Is a request of `api_key` served in the SASL state the connection
        is in? If not, the connection is to close."""
        sasl = self.sasl
        if sasl is None or sasl.admit(api_key) is not Admission.CLOSE:
            return True
        self._log_limit.warning(
            log, "connections closed for requests outside SASL authentication",
            "closing %s: api key %d not allowed in SASL state %s", self._peer, api_key,
            sasl.state.value)
        return False

    def started(self, api_key: int, slot: asyncio.Future[Any]) -> None:
        """A request of `api_key` has started, answered in `slot`: if it must
        run alone, no other starts until `slot` is done (allows)."""
        sasl = self.sasl
        if sasl is not None and sasl.serial(api_key):
            self._serial_slot = slot

    def responded(self) -> None:
        """A response has been built: later requests run as whom the SASL
        exchange has authenticated by now."""
        if self.sasl is not None:
            self.principal = self.sasl.principal

    async def raw_token(self, token: bytes) -> bytes | None:
        """The reply to one bare SASL token (after SaslHandshake v0); None if
        the client is refused: the connection is to close, without a reply
        (as Kafka does for v0), after connection.failed.authentication.delay.ms."""
        sasl = self.sasl
        assert sasl is not None
        try:
            result = await sasl.authenticate(token)
        except KafkaError as exc:
            log.info("closing %s: SASL authentication failed: %s", self._peer, exc)
            await asyncio.sleep(sasl.settings.failed_authentication_delay_ms / 1000)
            return None
        self.principal = sasl.principal
        return result.auth_bytes
