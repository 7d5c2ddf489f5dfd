"""KIP-368 re-authentication: connections.max.reauth.ms, the session lifetime
in SaslAuthenticate v1+, librdkafka re-authenticating on the same connection,
and a connection that does not re-authenticate closed once its session ends."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Producer

from strom.protocol.api import ApiKey, request_class
from strom.protocol.messages import build
from strom.testing import EmbeddedBroker
from tests.security.sasl_support import USERS, add_scram_users, client_config, sasl_overrides
from tests.wire import WireClient, metadata_request


class Logs:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, level: int, msg: str, *args: Any) -> None:
        self.lines.append(msg % args if args else msg)


def test_librdkafka_reauthenticates_on_the_same_connection() -> None:
    # librdkafka re-authenticates at ~90% of the lifetime; Kafka (and strom) take a
    # re-authentication at most once a second, so the lifetime is above that.
    with EmbeddedBroker(overrides=sasl_overrides(**{"connections.max.reauth.ms": "1500"})) as b:
        add_scram_users(b, USERS)
        logs = Logs()
        producer = Producer(client_config(b, "SCRAM-SHA-256", "alice", "alice-secret",
                                          debug="security,broker", logger=logs, log_level=7))
        delivered: list[object] = []
        deadline = time.monotonic() + 30
        # Produce until the client re-authenticated twice (bounded by the deadline).
        while (sum("Received REAUTH op" in line for line in logs.lines) < 2
               and time.monotonic() < deadline):
            producer.produce("reauth", b"x", on_delivery=lambda err, _: delivered.append(err))
            producer.poll(0.05)
        assert producer.flush(15) == 0
        assert sum("Received REAUTH op" in line for line in logs.lines) >= 2
        assert any("Received session lifetime 1500 ms from broker" in line
                   for line in logs.lines)
        assert delivered and all(err is None for err in delivered)
        # The broker connection (not the bootstrap one) was never dropped.
        assert not [line for line in logs.lines
                    if "Disconnected" in line and "/1:" in line]


def test_connection_without_reauthentication_is_closed_when_session_ends() -> None:
    with EmbeddedBroker(overrides=sasl_overrides(**{
            "listener.name.sasl_plaintext.plain.connections.max.reauth.ms": "700"})) as b:
        with WireClient(b.bootstrap) as raw:
            raw.request(ApiKey.SASL_HANDSHAKE, 1, build(request_class(ApiKey.SASL_HANDSHAKE, 1),
                                                        {"mechanism": "PLAIN"}))
            started = time.monotonic()
            auth = raw.request(ApiKey.SASL_AUTHENTICATE, 1,
                               build(request_class(ApiKey.SASL_AUTHENTICATE, 1),
                                     {"auth_bytes": b"\0alice\0alice-secret"}))
            assert auth.session_lifetime.total_seconds() * 1000 == 700
            closed = False
            for _ in range(100):  # bounded: 100 requests 50 ms apart
                try:
                    raw.request(ApiKey.METADATA, 12, metadata_request("x"))
                except (ConnectionError, OSError, EOFError):
                    closed = True
                    break
                time.sleep(0.05)  # pacing the probe, not synchronizing
            assert closed
            assert time.monotonic() - started >= 0.7
        # SaslAuthenticate v0 (no session lifetime field) still gets the session bounded.
        with WireClient(b.bootstrap) as raw:
            raw.request(ApiKey.SASL_HANDSHAKE, 1, build(request_class(ApiKey.SASL_HANDSHAKE, 1),
                                                        {"mechanism": "PLAIN"}))
            auth = raw.request(ApiKey.SASL_AUTHENTICATE, 0,
                               build(request_class(ApiKey.SASL_AUTHENTICATE, 0),
                                     {"auth_bytes": b"\0alice\0alice-secret"}))
            assert auth.error_code == 0


def test_other_mechanisms_keep_the_default() -> None:
    with EmbeddedBroker(overrides=sasl_overrides(**{
            "listener.name.sasl_plaintext.plain.connections.max.reauth.ms": "700"})) as b:
        add_scram_users(b, USERS)
        assert b.services.sasl_listeners["SASL_PLAINTEXT"].reauth_ms == {
            "PLAIN": 700, "SCRAM-SHA-256": 0, "SCRAM-SHA-512": 0}
