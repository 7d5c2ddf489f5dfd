"""A SASL connection's states as data (Kafka's SaslServerAuthenticator states):
how each state answers requests, and the legal transitions, checked by
SaslAuthenticator._move (strom.security.sasl.authenticator).

Apart from the authenticator so that the connection and the SASL handlers
can name them without importing the mechanisms (scramp, PyJWT, cryptography),
which a broker without SASL listeners never loads.
"""

from __future__ import annotations

import enum


class SaslState(enum.Enum):
    HANDSHAKE_OR_VERSIONS = "handshake_or_versions"
    """Before SaslHandshake: ApiVersions and SaslHandshake are served; any other
    request closes the connection."""
    AUTHENTICATE = "authenticate"
    """After SaslHandshake v1: SaslAuthenticate only; another request closes
    the connection (Kafka answers it ILLEGAL_SASL_STATE first; clients see the
    same failed connection)."""
    AUTHENTICATE_RAW = "authenticate_raw"
    """After SaslHandshake v0: the next frames are bare SASL tokens."""
    AUTHENTICATED = "authenticated"
    """Every request is served until the session expires; then only a
    SaslHandshake (re-authentication) is, and anything else closes."""
    REAUTHENTICATE = "reauthenticate"
    """After a re-authentication's SaslHandshake: SaslAuthenticate only."""
    FAILED = "failed"
    """Authentication failed: the answer is sent, then the connection closes."""


TRANSITIONS: dict[SaslState, frozenset[SaslState]] = {
    SaslState.HANDSHAKE_OR_VERSIONS: frozenset({SaslState.AUTHENTICATE,
                                                SaslState.AUTHENTICATE_RAW, SaslState.FAILED}),
    SaslState.AUTHENTICATE: frozenset({SaslState.AUTHENTICATED, SaslState.FAILED}),
    SaslState.AUTHENTICATE_RAW: frozenset({SaslState.AUTHENTICATED, SaslState.FAILED}),
    SaslState.AUTHENTICATED: frozenset({SaslState.REAUTHENTICATE}),
    SaslState.REAUTHENTICATE: frozenset({SaslState.AUTHENTICATED, SaslState.FAILED}),
    SaslState.FAILED: frozenset(),
}


class Admission(enum.Enum):
    SERVE = "serve"
    CLOSE = "close"
