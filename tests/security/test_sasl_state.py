"""The per-connection SASL state machine and the mechanisms' servers, sans-I/O."""

from __future__ import annotations

import asyncio

import pytest
import scramp

from strom.cluster.image import ScramCredentialRecord
from strom.errors import ErrorCode, IllegalSaslStateError, SaslAuthenticationError
from strom.protocol.api import ApiKey
from strom.security.principal import user
from strom.security.sasl.authenticator import SaslAuthenticator
from strom.security.sasl.plain import PlainServer
from strom.security.sasl.scram import (
    MECHANISM_CODES,
    ScramServer,
    credential_from_password,
    credential_from_salted_password,
    salted_password,
)
from strom.security.sasl.settings import ListenerSasl
from strom.security.sasl.state import Admission, SaslState


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


CREDENTIALS = {
    (name, mech): credential_from_password(name, mech, password)
    for name, password in (("alice", "alice-secret"),)
    for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512")
}


def lookup_for(mechanism: str):  # type: ignore[no-untyped-def]
    return lambda name: CREDENTIALS.get((name, mechanism))


def authenticator(reauth_ms: int = 0, clock: Clock | None = None) -> SaslAuthenticator:
    settings = ListenerSasl(listener="SASL_PLAINTEXT",
                            mechanisms=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
                            plain_users={"alice": "alice-secret"},
                            reauth_ms={m: reauth_ms for m in ("PLAIN", "SCRAM-SHA-256")})
    return SaslAuthenticator(settings, lookup_for, clock or Clock())


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def scram_exchange(server: ScramServer, name: str, password: str, mechanism: str) -> None:
    client = scramp.ScramClient([mechanism], name, password)
    first = server.evaluate(client.get_client_first().encode())
    client.set_server_first(first.decode())
    final = server.evaluate(client.get_client_final().encode())
    client.set_server_final(final.decode())  # checks the server's signature


def test_plain_server() -> None:
    server = PlainServer({"alice": "alice-secret"})
    assert server.evaluate(b"\0alice\0alice-secret") == b""
    assert server.complete and server.authorization_id == "alice"
    for token in (b"\0alice\0wrong", b"\0bob\0alice-secret", b"alice\0alice-secret",
                  b"\0alice\0", b"\0\0x", b"\xff\0a\0b", b"bob\0alice\0alice-secret"):
        with pytest.raises(SaslAuthenticationError):
            PlainServer({"alice": "alice-secret"}).evaluate(token)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_server_with_scramp_client(mechanism: str) -> None:
    server = ScramServer(mechanism, lookup_for(mechanism))
    scram_exchange(server, "alice", "alice-secret", mechanism)
    assert server.complete and server.authorization_id == "alice"


@pytest.mark.parametrize(("name", "password"), [("alice", "wrong"), ("mallory", "x")])
def test_scram_unknown_user_fails_as_wrong_password(name: str, password: str) -> None:
    server = ScramServer("SCRAM-SHA-256", lookup_for("SCRAM-SHA-256"))
    client = scramp.ScramClient(["SCRAM-SHA-256"], name, password)
    first = server.evaluate(client.get_client_first().encode())
    # The same shape of first answer (salt, iterations) for both: nothing tells.
    assert b",s=" in first and first.endswith(b",i=4096")
    client.set_server_first(first.decode())
    with pytest.raises(SaslAuthenticationError) as info:
        server.evaluate(client.get_client_final().encode())
    assert str(info.value) == ("Authentication failed during authentication due to invalid "
                               "credentials with SASL mechanism SCRAM-SHA-256")


def test_scram_malformed_messages() -> None:
    for token in (b"", b"garbage", b"n,,", b"\xff\xfe", b"p=tls-unique,,n=a,r=x"):
        with pytest.raises(SaslAuthenticationError):
            ScramServer("SCRAM-SHA-256", lookup_for("SCRAM-SHA-256")).evaluate(token)


def test_salted_password_credential_matches_password_credential() -> None:
    salt = b"0123456789abcdef"
    a = credential_from_password("u", "SCRAM-SHA-512", "pw", 4096, salt=salt)
    b = credential_from_salted_password("u", "SCRAM-SHA-512", salt,
                                        salted_password("SCRAM-SHA-512", "pw", salt, 4096), 4096)
    assert a == b and isinstance(a, ScramCredentialRecord)
    assert a.mechanism == MECHANISM_CODES["SCRAM-SHA-512"] == 2


def test_gate_before_authentication() -> None:
    sasl = authenticator()
    assert sasl.admit(ApiKey.API_VERSIONS) is Admission.SERVE
    assert sasl.admit(ApiKey.SASL_HANDSHAKE) is Admission.SERVE
    for api in (ApiKey.METADATA, ApiKey.PRODUCE, ApiKey.SASL_AUTHENTICATE):
        assert sasl.admit(api) is Admission.CLOSE
    assert sasl.handshake("PLAIN", 1) == ErrorCode.none
    assert sasl.state is SaslState.AUTHENTICATE
    assert sasl.admit(ApiKey.SASL_AUTHENTICATE) is Admission.SERVE
    for api in (ApiKey.API_VERSIONS, ApiKey.SASL_HANDSHAKE, ApiKey.METADATA):
        assert sasl.admit(api) is Admission.CLOSE
    result = run(sasl.authenticate(b"\0alice\0alice-secret"))
    assert result.session_lifetime_ms == 0
    assert sasl.authenticated and sasl.principal == user("alice")
    assert sasl.admit(ApiKey.METADATA) is Admission.SERVE
    # Not a re-authentication (no session lifetime): answered ILLEGAL_SASL_STATE.
    assert sasl.handshake("PLAIN", 1) == ErrorCode.illegal_sasl_state


def test_unsupported_mechanism_fails() -> None:
    sasl = authenticator()
    assert sasl.handshake("GSSAPI", 1) == ErrorCode.unsupported_sasl_mechanism
    assert sasl.state is SaslState.FAILED
    assert sasl.admit(ApiKey.API_VERSIONS) is Admission.CLOSE


def test_wrong_password_fails_for_good() -> None:
    sasl = authenticator()
    sasl.handshake("PLAIN", 1)
    with pytest.raises(SaslAuthenticationError):
        run(sasl.authenticate(b"\0alice\0nope"))
    assert sasl.state is SaslState.FAILED
    with pytest.raises(IllegalSaslStateError):
        run(sasl.authenticate(b"\0alice\0alice-secret"))


def test_handshake_v0_means_raw_tokens() -> None:
    sasl = authenticator()
    sasl.handshake("PLAIN", 0)
    assert sasl.raw_tokens
    run(sasl.authenticate(b"\0alice\0alice-secret"))
    assert sasl.authenticated and not sasl.raw_tokens


def test_reauthentication() -> None:
    clock = Clock()
    sasl = authenticator(reauth_ms=5000, clock=clock)
    sasl.handshake("PLAIN", 1)
    assert run(sasl.authenticate(b"\0alice\0alice-secret")).session_lifetime_ms == 5000
    clock.now += 5000
    assert sasl.admit(ApiKey.METADATA) is Admission.CLOSE  # expired: only re-authentication
    assert sasl.admit(ApiKey.SASL_HANDSHAKE) is Admission.SERVE
    assert sasl.handshake("PLAIN", 1) == ErrorCode.none
    assert sasl.state is SaslState.REAUTHENTICATE
    assert sasl.admit(ApiKey.METADATA) is Admission.CLOSE
    assert run(sasl.authenticate(b"\0alice\0alice-secret")).session_lifetime_ms == 5000
    assert sasl.admit(ApiKey.METADATA) is Admission.SERVE


def test_reauthentication_cannot_change_principal_or_mechanism() -> None:
    clock = Clock()
    sasl = authenticator(reauth_ms=5000, clock=clock)
    sasl.settings.plain_users = {"alice": "alice-secret", "bob": "bob-secret"}
    sasl.handshake("PLAIN", 1)
    run(sasl.authenticate(b"\0alice\0alice-secret"))
    clock.now += 2000
    sasl.handshake("PLAIN", 1)
    with pytest.raises(SaslAuthenticationError, match="Cannot change principals"):
        run(sasl.authenticate(b"\0bob\0bob-secret"))
    sasl = authenticator(reauth_ms=5000, clock=clock)
    sasl.handshake("PLAIN", 1)
    run(sasl.authenticate(b"\0alice\0alice-secret"))
    clock.now += 2000
    assert sasl.handshake("SCRAM-SHA-256", 1) == ErrorCode.none
    with pytest.raises(SaslAuthenticationError, match="not supported for re-authentication"):
        run(sasl.authenticate(b"n,,n=alice,r=abc"))


def test_reauthentication_at_most_once_a_second() -> None:
    # As Kafka's KafkaChannel: the first re-authentication may come at any time,
    # the next only a second after the previous one started.
    clock = Clock()
    sasl = authenticator(reauth_ms=5000, clock=clock)
    sasl.handshake("PLAIN", 1)
    run(sasl.authenticate(b"\0alice\0alice-secret"))
    clock.now += 100
    assert sasl.handshake("PLAIN", 1) == ErrorCode.none
    run(sasl.authenticate(b"\0alice\0alice-secret"))
    clock.now += 500
    assert sasl.handshake("PLAIN", 1) == ErrorCode.illegal_sasl_state
    assert sasl.authenticated
    clock.now += 500
    assert sasl.handshake("PLAIN", 1) == ErrorCode.none
