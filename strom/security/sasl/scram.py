"""SASL/SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) with `scramp`.

Credentials are the ScramCredentialRecords of the metadata image: a salt,
StoredKey and ServerKey (base64) and an iteration count, never the password.
The SCRAM exchange (nonces, proofs, signatures) is scramp's; this module looks
the user up and turns scramp's failures into Kafka's one message.

An unknown user gets a made-up credential (a salt and keys derived from a
per-process secret and the name), so the exchange fails at the client's
proof exactly as for a wrong password: the client cannot tell which it was.
Kafka itself answers an unknown user at the first message; strom is stricter.

scramp is imported by the functions that use it: AlterUserScramCredentials'
records need only hashlib, and scramp with asn1crypto under it was ~9 ms of
start-up. The module itself is loaded by a SCRAM listener's first exchange or
the first AlterUserScramCredentials, not with the handlers (issue 19).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable

from strom.cluster.image import ScramCredentialRecord
from strom.errors import SaslAuthenticationError
from strom.security.sasl.mechanism import SCRAM_SHA_256, SCRAM_SHA_512

#: Kafka's ScramMechanism type codes (AlterUserScramCredentials, the records).
MECHANISM_CODES = {SCRAM_SHA_256: 1, SCRAM_SHA_512: 2}
MECHANISM_NAMES = {code: name for name, code in MECHANISM_CODES.items()}
_HASHES = {SCRAM_SHA_256: hashlib.sha256, SCRAM_SHA_512: hashlib.sha512}
#: Kafka's bounds on a credential's iterations (ScramMechanism.minIterations,
#: ScramControlManager.MAX_ITERATIONS).
MIN_ITERATIONS = 4096
MAX_ITERATIONS = 16384
#: What kafka-configs.sh uses when a credential names no iterations.
DEFAULT_ITERATIONS = 4096

_FAKE_SECRET = secrets.token_bytes(32)

CredentialLookup = Callable[[str], ScramCredentialRecord | None]


def failure_message(mechanism: str, reauthenticating: bool = False) -> str:
    """Kafka's message for any SCRAM failure: it names neither the user nor the cause."""
    what = "re-authentication" if reauthenticating else "authentication"
    return (f"Authentication failed during {what} due to invalid credentials with SASL "
            f"mechanism {mechanism}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def credential_from_salted_password(name: str, mechanism: str, salt: bytes,
                                    salted_password: bytes,
                                    iterations: int) -> ScramCredentialRecord:
    """The record for AlterUserScramCredentials' upsertion: the client sends
    SaltedPassword (Hi(password, salt, i)); StoredKey and ServerKey follow
    from it as RFC 5802 section 3 defines them."""
    digest = _HASHES[mechanism]
    client_key = hmac.new(salted_password, b"Client Key", digest).digest()
    stored_key = digest(client_key).digest()
    server_key = hmac.new(salted_password, b"Server Key", digest).digest()
    return ScramCredentialRecord(name=name, mechanism=MECHANISM_CODES[mechanism],
                                 salt=_b64(salt), stored_key=_b64(stored_key),
                                 server_key=_b64(server_key), iterations=iterations)


def credential_from_password(name: str, mechanism: str, password: str,
                             iterations: int = DEFAULT_ITERATIONS,
                             salt: bytes | None = None) -> ScramCredentialRecord:
    """The record for a user and clear password (pre-start credentials, tests)."""
    import scramp

    salt_out, stored_key, server_key, count = scramp.ScramMechanism(mechanism).make_auth_info(
        password, iteration_count=iterations, salt=salt)
    return ScramCredentialRecord(name=name, mechanism=MECHANISM_CODES[mechanism],
                                 salt=_b64(salt_out), stored_key=_b64(stored_key),
                                 server_key=_b64(server_key), iterations=count)


def salted_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    """Hi(password, salt, i) as an AlterUserScramCredentials client sends it."""
    return hashlib.pbkdf2_hmac(_HASHES[mechanism]().name, password.encode("utf-8"), salt,
                               iterations)


def _fake_credential(mechanism: str, name: str) -> tuple[bytes, bytes, bytes, int]:
    digest = _HASHES[mechanism]
    seed = hmac.new(_FAKE_SECRET, f"{mechanism}\0{name}".encode(), digest).digest()
    return (seed[:16], digest(seed + b"stored").digest(), digest(seed + b"server").digest(),
            DEFAULT_ITERATIONS)


class ScramServer:
    """Two round trips: client-first -> server-first, client-final -> server-final."""

    def __init__(self, mechanism: str, lookup: CredentialLookup,
                 reauthenticating: bool = False) -> None:
        import scramp

        self.mechanism = mechanism
        self._lookup = lookup
        self._failure = failure_message(mechanism, reauthenticating)
        self._server = scramp.ScramMechanism(mechanism).make_server(self._auth_info)
        self._user: str | None = None
        self._known = False
        self._step = 0
        self._complete = False

    def _auth_info(self, username: str) -> tuple[bytes, bytes, bytes, int]:
        self._user = username
        record = self._lookup(username)
        if record is None or record.mechanism != MECHANISM_CODES[self.mechanism]:
            return _fake_credential(self.mechanism, username)
        self._known = True
        return (base64.b64decode(record.salt), base64.b64decode(record.stored_key),
                base64.b64decode(record.server_key), record.iterations)

    @property
    def complete(self) -> bool:
        return self._complete

    @property
    def authorization_id(self) -> str:
        assert self._complete and self._user is not None
        return self._user

    @property
    def credential_expiry_ms(self) -> int | None:
        return None

    def evaluate(self, token: bytes) -> bytes:
        import scramp  # already loaded by __init__

        try:
            message = token.decode("utf-8")
        except UnicodeDecodeError:
            raise SaslAuthenticationError(self._failure) from None
        try:
            if self._step == 0:
                self._step = 1
                self._server.set_client_first(message)
                return str(self._server.get_server_first()).encode("utf-8")
            if self._step == 1:
                self._step = 2
                self._server.set_client_final(message)
                reply = str(self._server.get_server_final()).encode("utf-8")
                if not self._known:  # a made-up credential can never verify; belt and braces
                    raise SaslAuthenticationError(self._failure)
                self._complete = True
                return reply
        except scramp.ScramException:
            raise SaslAuthenticationError(self._failure) from None
        raise SaslAuthenticationError(self._failure)
