"""One connection's SASL state (Kafka's SaslServerAuthenticator), sans-I/O
except for OAUTHBEARER's key refresh.

The connection asks `admit(api_key)` before it starts each request and the
SaslHandshake / SaslAuthenticate handlers call `handshake` and
`authenticate`. While not authenticated the connection runs one request at a
time, so the state seen by `admit` is always current.

KIP-368: a session whose lifetime ran out (connections.max.reauth.ms, or an
OAuth token's expiry) may only re-authenticate: the client sends SaslHandshake
then SaslAuthenticate on the same connection, with the same mechanism, and
must come back as the same principal; anything else closes the connection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from strom.errors import (
    ErrorCode,
    IllegalSaslStateError,
    SaslAuthenticationError,
)
from strom.protocol.api import ApiKey
from strom.security.principal import ANONYMOUS, KafkaPrincipal, user
from strom.security.sasl.mechanism import OAUTHBEARER, PLAIN, SaslServer
from strom.security.sasl.oauthbearer import JwksKeys, KeysNeeded, OAuthBearerServer
from strom.security.sasl.plain import PlainServer
from strom.security.sasl.scram import CredentialLookup, ScramServer
from strom.security.sasl.settings import ListenerSasl
from strom.security.sasl.state import TRANSITIONS, Admission, SaslState

#: Kafka starts a re-authentication at most once a second (KafkaChannel's
#: MIN_REAUTH_INTERVAL_ONE_SECOND_NANOS, counted from the previous
#: re-authentication's start; the first may come at any time); a SaslHandshake
#: sooner is an ordinary request and answered ILLEGAL_SASL_STATE.
MIN_REAUTH_INTERVAL_MS = 1000


_SASL_APIS = frozenset({ApiKey.SASL_HANDSHAKE, ApiKey.SASL_AUTHENTICATE})


@dataclass(frozen=True, slots=True)
class AuthenticateResult:
    auth_bytes: bytes
    #: Sent in SaslAuthenticate v1+ once complete (0: the session does not expire).
    session_lifetime_ms: int = 0


class SaslAuthenticator:
    def __init__(self, settings: ListenerSasl, scram_lookup: Callable[[str], CredentialLookup],
                 clock_ms: Callable[[], int]) -> None:
        """`scram_lookup(mechanism)` finds a user's credential for that SCRAM
        mechanism in the current metadata image; `clock_ms` is wall-clock ms."""
        self.settings = settings
        self._scram_lookup = scram_lookup
        self._clock_ms = clock_ms
        self.state = SaslState.HANDSHAKE_OR_VERSIONS
        self.principal: KafkaPrincipal = ANONYMOUS
        self.mechanism: str | None = None
        self._server: SaslServer | None = None
        self._session_expiry_ms: int | None = None
        self._reauth_begin_ms: int | None = None
        self._last_reauth_start_ms: int | None = None
        #: A re-authentication's SaslHandshake named another mechanism than the session's.
        self._bad_mechanism: str | None = None

    def _move(self, state: SaslState) -> None:
        if state not in TRANSITIONS[self.state]:
            raise IllegalSaslStateError(f"SASL state {self.state.value} cannot go to {state.value}")
        self.state = state

    @property
    def authenticated(self) -> bool:
        return self.state is SaslState.AUTHENTICATED

    @property
    def raw_tokens(self) -> bool:
        return self.state is SaslState.AUTHENTICATE_RAW

    @property
    def reauthenticating(self) -> bool:
        return self._reauth_begin_ms is not None

    def expired(self) -> bool:
        return (self._session_expiry_ms is not None
                and self._clock_ms() >= self._session_expiry_ms)

    def serial(self, api_key: int) -> bool:
        """Must this request run alone (nothing else in flight before or with it)?"""
        return not self.authenticated or api_key in _SASL_APIS or self.expired()

    def admit(self, api_key: int) -> Admission:
        state = self.state
        if state is SaslState.HANDSHAKE_OR_VERSIONS:
            ok = api_key in (ApiKey.API_VERSIONS, ApiKey.SASL_HANDSHAKE)
            return Admission.SERVE if ok else Admission.CLOSE
        if state in (SaslState.AUTHENTICATE, SaslState.REAUTHENTICATE):
            return Admission.SERVE if api_key == ApiKey.SASL_AUTHENTICATE else Admission.CLOSE
        if state is SaslState.AUTHENTICATED:
            if api_key == ApiKey.SASL_HANDSHAKE or not self.expired():
                return Admission.SERVE
            return Admission.CLOSE  # KIP-368: the session expired without re-authenticating
        return Admission.CLOSE

    # --- SaslHandshake ----------------------------------------------------------------

    def handshake(self, mechanism: str, version: int) -> ErrorCode:
        """The SaslHandshake's error code; the enabled mechanisms go with it."""
        now = self._clock_ms()
        if self.state is SaslState.AUTHENTICATED:
            last = self._last_reauth_start_ms
            if (self._session_expiry_ms is None or self.mechanism is None
                    or (last is not None and now - last < MIN_REAUTH_INTERVAL_MS)):
                # Not a re-authentication: as Kafka's KafkaApis answers it.
                return ErrorCode.illegal_sasl_state
            self._move(SaslState.REAUTHENTICATE)
            self._reauth_begin_ms = now
            self._last_reauth_start_ms = now
            if mechanism != self.mechanism:
                # Kafka refuses at the SaslAuthenticate that follows (REAUTH_BAD_MECHANISM).
                self._server = None
                self._bad_mechanism = mechanism
                return ErrorCode.none
            self._server = self._new_server(mechanism)
            return ErrorCode.none
        if self.state is not SaslState.HANDSHAKE_OR_VERSIONS:
            raise IllegalSaslStateError(
                f"Unexpected SaslHandshake in SASL state {self.state.value}")
        if mechanism not in self.settings.mechanisms:
            self._move(SaslState.FAILED)
            return ErrorCode.unsupported_sasl_mechanism
        self.mechanism = mechanism
        self._server = self._new_server(mechanism)
        self._move(SaslState.AUTHENTICATE if version >= 1 else SaslState.AUTHENTICATE_RAW)
        return ErrorCode.none

    def _new_server(self, mechanism: str) -> SaslServer:
        if mechanism == PLAIN:
            return PlainServer(self.settings.plain_users)
        if mechanism == OAUTHBEARER:
            assert self.settings.oauth is not None
            jwks = self.settings.jwks
            return OAuthBearerServer(jwks.keys if jwks is not None else JwksKeys(),
                                     self.settings.oauth)
        return ScramServer(mechanism, self._scram_lookup(mechanism),
                           reauthenticating=self.reauthenticating)

    # --- SaslAuthenticate -------------------------------------------------------------

    async def authenticate(self, token: bytes) -> AuthenticateResult:
        """The server's reply to one client token. Raises SaslAuthenticationError
        (the state is then FAILED: answer, then close) or IllegalSaslStateError."""
        if self.state not in (SaslState.AUTHENTICATE, SaslState.AUTHENTICATE_RAW,
                              SaslState.REAUTHENTICATE):
            raise IllegalSaslStateError(
                f"Unexpected SaslAuthenticate in SASL state {self.state.value}")
        server = self._server
        if server is None:
            self._move(SaslState.FAILED)
            raise SaslAuthenticationError(
                f"SASL mechanism '{self._bad_mechanism}' requested by client is "
                f"not supported for re-authentication of mechanism '{self.mechanism}'")
        try:
            reply = await self._evaluate(server, token)
        except SaslAuthenticationError:
            self._move(SaslState.FAILED)
            raise
        if not server.complete:
            return AuthenticateResult(reply)
        principal = user(server.authorization_id)
        if self.reauthenticating and principal != self.principal:
            self._move(SaslState.FAILED)
            raise SaslAuthenticationError(
                "Cannot change principals during re-authentication from "
                f"{self.principal.principal_type}.{self.principal.name}: "
                f"{principal.principal_type}.{principal.name}")
        self.principal = principal
        lifetime = self._session_lifetime_ms(server)
        self._move(SaslState.AUTHENTICATED)
        self._reauth_begin_ms = None
        self._server = None
        return AuthenticateResult(reply, lifetime)

    async def _evaluate(self, server: SaslServer, token: bytes) -> bytes:
        if not isinstance(server, OAuthBearerServer):
            return server.evaluate(token)
        jwks = self.settings.jwks
        if jwks is None:  # Kafka's unsecured validator: no keys
            return server.evaluate(token)
        server.use_keys(await jwks.current())
        try:
            return server.evaluate(token)
        except KeysNeeded:
            server.use_keys(await jwks.refresh())
        try:
            return server.evaluate(token)
        except KeysNeeded:
            return server.unknown_key()

    def _session_lifetime_ms(self, server: SaslServer) -> int:
        """Kafka's ReauthInfo.calcCompletionTimesAndReturnSessionLifetimeMs."""
        now = self._clock_ms()
        credential_expiry = server.credential_expiry_ms
        max_reauth = self.settings.reauth_ms.get(server.mechanism, 0)
        if credential_expiry is None and max_reauth <= 0:
            self._session_expiry_ms = None
            return 0
        if credential_expiry is None:
            lifetime = max_reauth
        elif max_reauth <= 0:
            lifetime = max(0, credential_expiry - now)
        else:
            lifetime = max(0, min(credential_expiry - now, max_reauth))
        self._session_expiry_ms = now + lifetime
        return lifetime
