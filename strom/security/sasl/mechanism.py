"""What every SASL mechanism's server offers the authenticator."""

from __future__ import annotations

from typing import Protocol

PLAIN = "PLAIN"
SCRAM_SHA_256 = "SCRAM-SHA-256"
SCRAM_SHA_512 = "SCRAM-SHA-512"
OAUTHBEARER = "OAUTHBEARER"
GSSAPI = "GSSAPI"
SUPPORTED_MECHANISMS = (PLAIN, SCRAM_SHA_256, SCRAM_SHA_512, OAUTHBEARER)


class SaslServer(Protocol):
    """One authentication exchange of one mechanism (javax.security.sasl.SaslServer).

    `evaluate` takes the client's next token and returns the server's reply;
    it raises SaslAuthenticationError (its message is what the client is
    told) when the client is refused. Once `complete`, `authorization_id` is
    the user name the principal is built from."""

    mechanism: str

    def evaluate(self, token: bytes) -> bytes: ...

    @property
    def complete(self) -> bool: ...

    @property
    def authorization_id(self) -> str: ...

    @property
    def credential_expiry_ms(self) -> int | None:
        """When the credential itself expires (an OAuth token's exp, epoch
        ms): KIP-368 bounds the session by it. None: it does not."""
        ...
