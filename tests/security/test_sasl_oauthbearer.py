"""OAUTHBEARER: JWTs signed by a key of a JWKS file (or a loopback HTTP
server), validated by the broker; expired tokens, wrong audience or issuer,
unknown keys, tampered tokens, HMAC tokens; the session bounded by the
token's expiry (KIP-368)."""

from __future__ import annotations

import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient
from cryptography.hazmat.primitives.asymmetric import rsa

from strom.errors import InvalidConfigError
from strom.protocol.api import ApiKey, request_class
from strom.protocol.messages import build
from strom.security.sasl.oauthbearer import (
    JwksKeys,
    OAuthBearerServer,
    ValidatorSettings,
    parse_client_first,
)
from strom.testing import EmbeddedBroker
from tests.wire import WireClient

AUDIENCE = "strom-test"
ISSUER = "https://issuer.example"


class Issuer:
    def __init__(self, kid: str = "k1") -> None:
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> str:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid=self.kid, alg="RS256", use="sig")
        return json.dumps({"keys": [jwk]})

    def token(self, sub: str = "alice", lifetime_s: float = 300, **claims: Any) -> str:
        now = time.time()
        payload = {"sub": sub, "iat": int(now), "exp": int(now + lifetime_s), "aud": AUDIENCE,
                   "iss": ISSUER, "scope": "kafka", **claims}
        return jwt.encode(payload, self.key, algorithm="RS256", headers={"kid": self.kid})


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer()


def overrides(jwks_url: str, **extra: str) -> dict[str, str]:
    return {"listeners": "SASL_PLAINTEXT://127.0.0.1:0",
            "sasl.enabled.mechanisms": "OAUTHBEARER",
            "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class":
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
            "sasl.oauthbearer.jwks.endpoint.url": jwks_url,
            "sasl.oauthbearer.expected.audience": AUDIENCE,
            "sasl.oauthbearer.expected.issuer": ISSUER,
            "connection.failed.authentication.delay.ms": "10", **extra}


@pytest.fixture(scope="module")
def broker(issuer: Issuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    path.write_text(issuer.jwks())
    with EmbeddedBroker(overrides=overrides(path.as_uri())) as b:
        yield b


def confluent(broker: EmbeddedBroker, token: str, errors: list[str] | None = None,
              ) -> dict[str, Any]:
    def oauth_cb(_: str) -> tuple[str, float]:
        return token, time.time() + 300

    config: dict[str, Any] = {"bootstrap.servers": broker.bootstrap,
                              "security.protocol": "SASL_PLAINTEXT",
                              "sasl.mechanism": "OAUTHBEARER", "oauth_cb": oauth_cb,
                              "log_level": 0}
    if errors is not None:
        config["error_cb"] = lambda err: errors.append(str(err))
    return config


def test_confluent_kafka_with_a_signed_token(broker: EmbeddedBroker, issuer: Issuer) -> None:
    producer = Producer(confluent(broker, issuer.token()))
    producer.produce(f"oauth-{uuid.uuid4().hex[:6]}", b"v")
    assert producer.flush(15) == 0


def client_first(token: str, authzid: str = "") -> bytes:
    gs2 = f"n,a={authzid}," if authzid else "n,,"
    return f"{gs2}\x01auth=Bearer {token}\x01\x01".encode()


def authenticate(broker: EmbeddedBroker, token: bytes) -> tuple[Any, WireClient]:
    raw = WireClient(broker.bootstrap)
    raw.request(ApiKey.SASL_HANDSHAKE, 1,
                build(request_class(ApiKey.SASL_HANDSHAKE, 1), {"mechanism": "OAUTHBEARER"}))
    response = raw.request(ApiKey.SASL_AUTHENTICATE, 2,
                           build(request_class(ApiKey.SASL_AUTHENTICATE, 2),
                                 {"auth_bytes": token}))
    return response, raw


def test_session_lifetime_is_the_token_lifetime(broker: EmbeddedBroker, issuer: Issuer) -> None:
    response, raw = authenticate(broker, client_first(issuer.token(lifetime_s=120)))
    with raw:
        assert response.error_code == 0
        lifetime_ms = response.session_lifetime.total_seconds() * 1000
        assert 110_000 < lifetime_ms <= 120_000


def bad_tokens(issuer: Issuer) -> dict[str, str]:
    other = Issuer(kid="k1")  # same key id, another key
    good = issuer.token()
    head, body, signature = good.split(".")
    tampered_body = jwt.utils.base64url_encode(json.dumps(
        {"sub": "admin", "exp": int(time.time()) + 300, "aud": AUDIENCE,
         "iss": ISSUER}).encode()).decode()
    return {
        "expired": issuer.token(lifetime_s=-120),
        "bad audience": issuer.token(aud="someone-else"),
        "bad issuer": issuer.token(iss="https://evil.example"),
        "no subject": jwt.encode({"exp": int(time.time()) + 300, "aud": AUDIENCE, "iss": ISSUER},
                                 issuer.key, algorithm="RS256", headers={"kid": "k1"}),
        "unknown key": Issuer(kid="k9").token(),
        "wrong key": other.token(),
        "tampered": f"{head}.{tampered_body}.{signature}",
        "hmac": jwt.encode({"sub": "x", "exp": int(time.time()) + 300}, "secret",
                           algorithm="HS256", headers={"kid": "k1"}),
        "not a jwt": "abc.def",
    }


def test_invalid_tokens_get_rfc7628_error_then_failure(broker: EmbeddedBroker,
                                                       issuer: Issuer) -> None:
    for case, token in bad_tokens(issuer).items():
        response, raw = authenticate(broker, client_first(token))
        with raw:
            # RFC 7628 3.2.2: an error challenge, acknowledged by the client with \x01.
            assert response.error_code == 0, case
            assert json.loads(response.auth_bytes) == {"status": "invalid_token"}, case
            final = raw.request(ApiKey.SASL_AUTHENTICATE, 2,
                                build(request_class(ApiKey.SASL_AUTHENTICATE, 2),
                                      {"auth_bytes": b"\x01"}))
            assert final.error_code == 58, case
            assert raw.is_closed_by_peer(), case


def test_malformed_client_responses(broker: EmbeddedBroker, issuer: Issuer) -> None:
    for token in (b"", b"n,,", b"x,,\x01auth=Bearer t\x01\x01", b"n,,\x01auth=Basic t\x01\x01",
                  b"n,,auth=Bearer t", b"\xff\xfe"):
        response, raw = authenticate(broker, token)
        with raw:
            assert response.error_code == 58
            assert raw.is_closed_by_peer()
    # An authorization id other than the token's subject.
    response, raw = authenticate(broker, client_first(issuer.token(), authzid="admin"))
    with raw:
        assert json.loads(response.auth_bytes) == {"status": "invalid_authorization_id"}


def test_confluent_kafka_expired_token_is_refused(broker: EmbeddedBroker,
                                                 issuer: Issuer) -> None:
    errors: list[str] = []
    admin = AdminClient(confluent(broker, issuer.token(lifetime_s=-120), errors))
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=3)
    admin.poll(1)
    assert "invalid_token" in " ".join(errors)


def test_jwks_over_http_and_key_rotation(issuer: Issuer) -> None:
    keys = {"body": issuer.jwks()}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            data = keys["body"].encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/jwks"
        with EmbeddedBroker(overrides=overrides(url)) as b:
            response, raw = authenticate(b, client_first(issuer.token()))
            with raw:
                assert response.error_code == 0
            # A new key appears at the identity provider: a token signed by it
            # makes the broker read the JWKS again.
            rotated = Issuer(kid="k2")
            keys["body"] = rotated.jwks()
            response, raw = authenticate(b, client_first(rotated.token()))
            with raw:
                assert response.error_code == 0
    finally:
        server.shutdown()
        server.server_close()


def test_configuration_refused_at_start(tmp_path: Path) -> None:
    base = {"listeners": "SASL_PLAINTEXT://127.0.0.1:0", "sasl.enabled.mechanisms": "OAUTHBEARER"}
    with pytest.raises(InvalidConfigError, match="sasl.oauthbearer.jwks.endpoint.url: not set"):
        EmbeddedBroker(overrides=base).start()
    with pytest.raises(InvalidConfigError, match="cannot read"):
        EmbeddedBroker(overrides={**base, "sasl.oauthbearer.jwks.endpoint.url":
                                  (tmp_path / "missing.json").as_uri()}).start()
    with pytest.raises(InvalidConfigError, match="is not supported"):
        EmbeddedBroker(overrides={**base, "sasl.oauthbearer.jwks.endpoint.url": "file:///x",
                                  "listener.name.sasl_plaintext.oauthbearer.sasl.server."
                                  "callback.handler.class": "com.example.Custom"}).start()


def test_sans_io_server(issuer: Issuer) -> None:
    keys = JwksKeys.from_json(issuer.jwks())
    server = OAuthBearerServer(keys, ValidatorSettings(expected_audience=(AUDIENCE,)))
    token = issuer.token(sub="svc", lifetime_s=60)
    assert server.evaluate(client_first(token)) == b""
    assert server.complete and server.authorization_id == "svc"
    assert server.credential_expiry_ms is not None
    assert parse_client_first(b"n,a=a=2Cb,\x01auth=Bearer t\x01x=y\x01\x01") == (
        "a,b", "t", {"x": "y"})
    with pytest.raises(ValueError):
        JwksKeys.from_json("[]")


UNSECURED = ("org.apache.kafka.common.security.oauthbearer.internals.unsecured."
             "OAuthBearerUnsecuredValidatorCallbackHandler")


def unsigned(claims: dict[str, Any]) -> str:
    encode = jwt.utils.base64url_encode
    return (encode(b'{"alg":"none"}').decode() + "." + encode(json.dumps(claims).encode()).decode()
            + ".")


def test_kafka_unsecured_validator_only_when_named(issuer: Issuer) -> None:
    base = {"listeners": "SASL_PLAINTEXT://127.0.0.1:0", "sasl.enabled.mechanisms": "OAUTHBEARER",
            "connection.failed.authentication.delay.ms": "10"}
    with EmbeddedBroker(overrides={
            **base, "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class":
            UNSECURED}) as b:
        response, raw = authenticate(b, client_first(unsigned(
            {"sub": "dev", "exp": int(time.time()) + 60})))
        with raw:
            assert response.error_code == 0
        for token in (unsigned({"sub": "dev", "exp": int(time.time()) - 120}),
                      unsigned({"sub": "dev"}), issuer.token()):
            response, raw = authenticate(b, client_first(token))
            with raw:
                assert json.loads(response.auth_bytes) == {"status": "invalid_token"}
    # A JWKS listener never takes unsigned tokens.
    keys = JwksKeys.from_json(issuer.jwks())
    server = OAuthBearerServer(keys, ValidatorSettings())
    assert json.loads(server.evaluate(client_first(unsigned(
        {"sub": "x", "exp": int(time.time()) + 60})))) == {"status": "invalid_token"}
