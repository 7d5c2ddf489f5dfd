"""SASL/PLAIN (RFC 4616) against the users of a PlainLoginModule JAAS entry.

The client sends one message, [authzid] NUL authcid NUL passwd; the password
is compared in constant time. As Kafka's PlainSaslServer: an authorization
id other than the user name is refused, and the client is never told whether
the user exists.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from strom.errors import SaslAuthenticationError
from strom.security.sasl.mechanism import PLAIN

INVALID = "Authentication failed: Invalid username or password"


class PlainServer:
    mechanism = PLAIN

    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = users
        self._user: str | None = None

    @property
    def complete(self) -> bool:
        return self._user is not None

    @property
    def authorization_id(self) -> str:
        assert self._user is not None
        return self._user

    @property
    def credential_expiry_ms(self) -> int | None:
        return None

    def evaluate(self, token: bytes) -> bytes:
        if self._user is not None:
            raise SaslAuthenticationError("Authentication failed: PLAIN exchange already complete")
        try:
            text = token.decode("utf-8")
        except UnicodeDecodeError:
            raise SaslAuthenticationError(
                "Invalid SASL/PLAIN response: not valid UTF-8") from None
        parts = text.split("\0")
        if len(parts) != 3:
            raise SaslAuthenticationError(
                f"Invalid SASL/PLAIN response: expected 3 tokens, got {len(parts)}")
        authzid, username, password = parts
        if not username:
            raise SaslAuthenticationError("Authentication failed: username not specified")
        if not password:
            raise SaslAuthenticationError("Authentication failed: password not specified")
        if authzid and authzid != username:
            raise SaslAuthenticationError(
                "Authentication failed: Client requested an authorization id that is "
                "different from username")
        expected = self._users.get(username)
        # Compared even for an unknown user, so the time taken does not tell.
        known = hmac.compare_digest(password.encode(), (expected or "\0" + password).encode())
        if expected is None or not known:
            raise SaslAuthenticationError(INVALID)
        self._user = username
        return b""
