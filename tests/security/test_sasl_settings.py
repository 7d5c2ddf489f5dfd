"""SASL settings read at start: Kafka's names, per-listener and per-mechanism
prefixes, and what strom refuses with one line."""

from __future__ import annotations

import pytest

from strom.config import BrokerConfig
from strom.errors import InvalidConfigError
from strom.security.sasl.settings import sasl_listeners
from tests.security.sasl_support import plain_jaas

BASE = {"listeners": "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0"}


def refused(properties: dict[str, str]) -> str:
    with pytest.raises(InvalidConfigError) as info:
        sasl_listeners(BrokerConfig.from_properties({**BASE, **properties}))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_gssapi_default_refused_with_the_fix() -> None:
    assert "GSSAPI (Kerberos, Kafka's default) is not supported" in refused({})
    assert "sasl.enabled.mechanisms" in refused({"sasl.enabled.mechanisms": "PLAIN,GSSAPI"})
    assert "unknown SASL mechanism DIGEST-MD5" in refused(
        {"sasl.enabled.mechanisms": "DIGEST-MD5"})


def test_plain_needs_a_plain_login_module() -> None:
    assert "plain.sasl.jaas.config: not set" in refused({"sasl.enabled.mechanisms": "PLAIN"})
    assert "not org.example.Other" in refused({
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": "org.example.Other required;"})
    message = refused({"sasl.enabled.mechanisms": "PLAIN",
                       "listener.name.sasl_plaintext.plain.sasl.jaas.config": "broken"})
    assert message.startswith("listener.name.sasl_plaintext.plain.sasl.jaas.config: ")


def test_prefixes_most_specific_wins() -> None:
    config = BrokerConfig.from_properties({
        **BASE,
        "sasl.enabled.mechanisms": "GSSAPI",  # only the listener's own value counts
        "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
        "sasl.jaas.config": plain_jaas({"fallback": "x"}),
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": plain_jaas({"alice": "a"}),
        "connections.max.reauth.ms": "60000",
        "listener.name.sasl_plaintext.scram-sha-512.connections.max.reauth.ms": "5000",
    })
    (settings,) = sasl_listeners(config).values()
    assert settings.mechanisms == ("PLAIN", "SCRAM-SHA-512")
    assert settings.plain_users == {"alice": "a"}
    assert settings.reauth_ms == {"PLAIN": 60000, "SCRAM-SHA-512": 5000}


def test_plain_sasl_jaas_config_fallback_and_plaintext_listener_ignored() -> None:
    config = BrokerConfig.from_properties({
        **BASE, "sasl.enabled.mechanisms": "PLAIN", "sasl.jaas.config": plain_jaas({"b": "c"})})
    assert {name: s.plain_users for name, s in sasl_listeners(config).items()} == {
        "SASL_PLAINTEXT": {"b": "c"}}
    assert sasl_listeners(BrokerConfig.from_properties(
        {"listeners": "PLAINTEXT://127.0.0.1:0"})) == {}


def test_bad_numbers_name_the_prefixed_setting() -> None:
    message = refused({"sasl.enabled.mechanisms": "SCRAM-SHA-256",
                       "listener.name.sasl_plaintext.scram-sha-256.connections.max.reauth.ms":
                           "soon"})
    assert "scram-sha-256.connections.max.reauth.ms" in message


def test_broker_refuses_to_start_on_bad_sasl_settings() -> None:
    from strom.testing import EmbeddedBroker

    with pytest.raises(InvalidConfigError, match="GSSAPI"):
        EmbeddedBroker(overrides={"listeners": "SASL_PLAINTEXT://127.0.0.1:0"}).start()
