"""Kafka's Java client properties (what `--command-config FILE` holds for
Kafka's own tools) as librdkafka properties, so the same file works for
strom's commands.

- sasl.jaas.config: PlainLoginModule / ScramLoginModule username and password
  become sasl.username / sasl.password; OAuthBearerLoginModule clientId,
  clientSecret and scope become librdkafka's OIDC client settings (with
  sasl.oauthbearer.token.endpoint.url, Kafka's name, which librdkafka shares).
- ssl.truststore.location: a PEM file becomes ssl.ca.location; a PKCS12
  truststore is converted to a PEM file (a temporary file, removed at exit).
  JKS cannot be read: the message says how to convert it.
- ssl.keystore.location: PKCS12 stays as it is (librdkafka reads PKCS12
  keystores); a PEM keystore (key and certificate chain in one file) becomes
  ssl.key.location and ssl.certificate.location.
- ssl.endpoint.identification.algorithm: an empty value (Kafka's "off")
  becomes none.
- Settings that only configure the Java client (types of stores, login
  classes, ...) are dropped; everything else passes through unchanged, since
  librdkafka shares most of Kafka's names (security.protocol, sasl.mechanism,
  ssl.key.password, client.id, ...).
"""

from __future__ import annotations

import atexit
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from strom.errors import InvalidConfigError

#: Java-client-only settings with nothing to carry over to librdkafka.
_DROPPED = frozenset({
    "ssl.truststore.type", "ssl.keystore.type", "ssl.truststore.password",
    "sasl.login.callback.handler.class", "sasl.client.callback.handler.class",
    "sasl.login.class", "ssl.protocol", "ssl.enabled.protocols", "ssl.trustmanager.algorithm",
    "ssl.keymanager.algorithm", "ssl.secure.random.implementation", "ssl.provider",
    "sasl.kerberos.service.name", "ssl.engine.factory.class",
    "sasl.oauthbearer.jwks.endpoint.url", "sasl.oauthbearer.expected.audience",
    "sasl.oauthbearer.expected.issuer",
})


def _jaas(text: str) -> dict[str, str]:
    # The CLI sits above strom.security; its sans-I/O JAAS parser is reused here.
    from strom.security.sasl.jaas import OAUTHBEARER_LOGIN_MODULE, parse_single_module

    try:
        entry = parse_single_module(text, "sasl.jaas.config")
    except InvalidConfigError as exc:
        raise ValueError(str(exc)) from None
    options = entry.options
    out: dict[str, str] = {}
    if entry.login_module == OAUTHBEARER_LOGIN_MODULE:
        if "clientId" in options:
            out["sasl.oauthbearer.method"] = "oidc"
            out["sasl.oauthbearer.client.id"] = options["clientId"]
        if "clientSecret" in options:
            out["sasl.oauthbearer.client.secret"] = options["clientSecret"]
        if "scope" in options:
            out["sasl.oauthbearer.scope"] = options["scope"]
        return out
    if "username" in options:
        out["sasl.username"] = options["username"]
    if "password" in options:
        out["sasl.password"] = options["password"]
    return out


def _pkcs12_to_pem(path: str, password: str | None) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"ssl.truststore.location: cannot read {path}: {exc.strerror}") from None
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(
            data, password.encode() if password else None)
    except ValueError as exc:
        raise ValueError(f"ssl.truststore.location: {path}: {exc}") from None
    certificates = ([cert] if cert is not None else []) + list(extra or [])
    pem = b"".join(c.public_bytes(Encoding.PEM) for c in certificates)
    handle, name = tempfile.mkstemp(prefix="strom-truststore-", suffix=".pem")
    with os.fdopen(handle, "wb") as out:
        out.write(pem)
    atexit.register(lambda: Path(name).unlink(missing_ok=True))
    return name


def librdkafka_properties(properties: Mapping[str, str]) -> dict[str, str]:
    """`properties` (Kafka client names) as librdkafka takes them; ValueError
    with a one-line message for what cannot be carried over."""
    out: dict[str, str] = {}
    for key, value in properties.items():
        if key in _DROPPED or key.startswith("ssl.truststore.") or key.startswith(
                "ssl.keystore."):
            continue
        if key == "sasl.jaas.config":
            out.update(_jaas(value))
        elif key == "ssl.endpoint.identification.algorithm":
            out[key] = value or "none"
        else:
            out[key] = value
    trust = properties.get("ssl.truststore.location")
    if trust:
        kind = properties.get("ssl.truststore.type", "").upper()
        if kind == "PEM" or trust.endswith((".pem", ".crt")):
            out["ssl.ca.location"] = trust
        elif kind == "JKS" or trust.endswith(".jks"):
            raise ValueError(
                f"ssl.truststore.location: {trust} is a JKS truststore, which librdkafka cannot "
                "read; convert it: keytool -importkeystore -srckeystore FILE.jks "
                "-destkeystore FILE.p12 -deststoretype PKCS12")
        else:
            out["ssl.ca.location"] = _pkcs12_to_pem(
                trust, properties.get("ssl.truststore.password"))
    keystore = properties.get("ssl.keystore.location")
    if keystore:
        if properties.get("ssl.keystore.type", "").upper() == "PEM":
            out["ssl.key.location"] = keystore
            out["ssl.certificate.location"] = keystore
        elif properties.get("ssl.keystore.type", "").upper() == "JKS" or keystore.endswith(
                ".jks"):
            raise ValueError(
                f"ssl.keystore.location: {keystore} is a JKS keystore, which librdkafka cannot "
                "read; convert it to PKCS12 with keytool -importkeystore")
        else:
            out["ssl.keystore.location"] = keystore
            if "ssl.keystore.password" in properties:
                out["ssl.keystore.password"] = properties["ssl.keystore.password"]
    return out
