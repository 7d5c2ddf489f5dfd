"""Kafka's TLS settings read into ssl contexts (strom/security/tls.py) and
the listener settings (strom/security/listeners.py): key stores in the
formats Kafka users have, and one-line refusals for what cannot work."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from strom.config import BrokerConfig
from strom.errors import InvalidConfigError
from strom.security import listeners, tls
from strom.testing.tls import TestCertificateAuthority


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCertificateAuthority:
    return TestCertificateAuthority(tmp_path_factory.mktemp("ca"))


def config(**settings: str) -> BrokerConfig:
    return BrokerConfig.from_properties({k.replace("_", "."): v for k, v in settings.items()})


def props(**settings: str) -> BrokerConfig:
    return BrokerConfig.from_properties(settings)


def write_pkcs12(ca: TestCertificateAuthority, path: Path, password: str | None) -> None:
    pem = ca.server_keystore_path.read_bytes()
    key = serialization.load_pem_private_key(pem, None)
    certs = x509.load_pem_x509_certificates(pem)
    encryption = (serialization.BestAvailableEncryption(password.encode()) if password
                  else serialization.NoEncryption())
    path.write_bytes(pkcs12.serialize_key_and_certificates(
        b"broker", key, certs[0], certs[1:], encryption))  # type: ignore[arg-type]


def test_pkcs12_keystore_under_its_type_and_under_kafkas_default_jks(
        ca: TestCertificateAuthority, tmp_path: Path) -> None:
    store = tmp_path / "broker.p12"
    write_pkcs12(ca, store, "s3cret")
    for kind in ("PKCS12", "JKS"):  # Java reads PKCS12 files as JKS too (keystore.type.compat)
        context = tls.server_context(props(**{
            "ssl.keystore.type": kind, "ssl.keystore.location": str(store),
            "ssl.keystore.password": "s3cret"}), "SSL")
        assert context.verify_mode == ssl.CERT_NONE


def test_pkcs12_wrong_password_is_one_line_naming_the_setting(
        ca: TestCertificateAuthority, tmp_path: Path) -> None:
    store = tmp_path / "broker.p12"
    write_pkcs12(ca, store, "s3cret")
    with pytest.raises(InvalidConfigError) as info:
        tls.server_context(props(**{"ssl.keystore.type": "PKCS12",
                                    "ssl.keystore.location": str(store),
                                    "ssl.keystore.password": "wrong"}), "SSL")
    assert "ssl.keystore.password" in str(info.value)
    assert "\n" not in str(info.value)


def test_jks_is_refused_with_the_keytool_command(tmp_path: Path) -> None:
    store = tmp_path / "broker.jks"
    store.write_bytes(b"\xfe\xed\xfe\xed" + b"\0" * 64)  # JKS magic
    with pytest.raises(InvalidConfigError, match="keytool -importkeystore .*PKCS12"):
        tls.server_context(props(**{"ssl.keystore.location": str(store),
                                    "ssl.keystore.password": "x"}), "SSL")


def test_missing_keystore_file_and_missing_key(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigError, match="ssl.keystore.location: cannot read"):
        tls.server_context(props(**{"ssl.keystore.location": str(tmp_path / "none.p12")}),
                           "SSL")
    with pytest.raises(InvalidConfigError, match="serves TLS but has no key"):
        tls.server_context(props(), "SSL")


def test_pem_file_with_encrypted_key_needs_ssl_key_password(
        ca: TestCertificateAuthority, tmp_path: Path) -> None:
    pem = ca.server_keystore_path.read_bytes()
    key = serialization.load_pem_private_key(pem, None)
    encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(b"keypass"))
    chain = b"".join(c.public_bytes(serialization.Encoding.PEM)
                     for c in x509.load_pem_x509_certificates(pem))
    store = tmp_path / "broker.pem"
    store.write_bytes(encrypted + chain)
    base = {"ssl.keystore.type": "PEM", "ssl.keystore.location": str(store)}
    tls.server_context(props(**base, **{"ssl.key.password": "keypass"}), "SSL")
    with pytest.raises(InvalidConfigError, match="set ssl.key.password"):
        tls.server_context(props(**base), "SSL")
    with pytest.raises(InvalidConfigError, match="wrong ssl.key.password"):
        tls.server_context(props(**base, **{"ssl.key.password": "nope"}), "SSL")


def test_inline_pem_as_a_properties_file_joins_it(ca: TestCertificateAuthority,
                                                  tmp_path: Path) -> None:
    # A Kafka server.properties continues inline PEM over lines with
    # backslashes; the value arrives as one line without newlines.
    raw = ca.server_keystore_path.read_bytes()
    key = serialization.load_pem_private_key(raw, None).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode().strip()
    chain = "".join(c.public_bytes(serialization.Encoding.PEM).decode()
                    for c in x509.load_pem_x509_certificates(raw)).strip()
    ca_pem = ca.ca_path.read_text()

    def continued(text: str) -> str:
        return " \\\n".join(text.splitlines())

    path = tmp_path / "server.properties"
    path.write_text(
        "listeners=SSL://127.0.0.1:0\n"
        "ssl.keystore.type=PEM\n"
        f"ssl.keystore.key={continued(key)}\n"
        f"ssl.keystore.certificate.chain={continued(chain)}\n"
        "ssl.truststore.type=PEM\n"
        f"ssl.truststore.certificates={continued(ca_pem)}\n"
        "ssl.client.auth=required\n")
    context = tls.server_context(BrokerConfig.load(path), "SSL")
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.get_ca_certs()[0]["subject"]


def test_inline_pem_needs_type_pem(ca: TestCertificateAuthority) -> None:
    with pytest.raises(InvalidConfigError, match="needs ssl.keystore.type=PEM"):
        tls.server_context(props(**{"ssl.keystore.key": "x",
                                    "ssl.keystore.certificate.chain": "y"}), "SSL")


def test_listener_name_prefix_overrides_per_listener(ca: TestCertificateAuthority,
                                                     tmp_path: Path) -> None:
    config = props(**{
        "listeners": "INTERNAL://127.0.0.1:0,EXTERNAL://127.0.0.1:0",
        "listener.security.protocol.map": "INTERNAL:SSL,EXTERNAL:SSL",
        **ca.server_overrides("required", listener="INTERNAL"),
        **ca.server_overrides("none", listener="EXTERNAL"),
        "listener.name.external.ssl.keystore.location": str(tmp_path / "missing.pem"),
    })
    assert tls.server_context(config, "INTERNAL").verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(InvalidConfigError,
                       match="listener.name.external.ssl.keystore.location: cannot read"):
        tls.server_context(config, "EXTERNAL")


def test_protocols_and_cipher_suites(ca: TestCertificateAuthority) -> None:
    context = tls.server_context(props(**ca.server_overrides(), **{
        "ssl.enabled.protocols": "TLSv1.2",
        "ssl.cipher.suites": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"}), "SSL")
    assert context.maximum_version == ssl.TLSVersion.TLSv1_2
    assert {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"} == {
        "ECDHE-ECDSA-AES128-GCM-SHA256"}
    with pytest.raises(InvalidConfigError, match="ssl.cipher.suites: unknown"):
        tls.server_context(props(**ca.server_overrides(), **{
            "ssl.cipher.suites": "TLS_NOT_A_SUITE"}), "SSL")
    with pytest.raises(InvalidConfigError, match="ssl.enabled.protocols: unknown"):
        tls.server_context(props(**ca.server_overrides(), **{
            "ssl.enabled.protocols": "SSLv3"}), "SSL")


def test_listeners_advertised_and_inter_broker() -> None:
    config = props(**{
        "listeners": "PLAINTEXT://:0,SSL://127.0.0.1:0,CONTROLLER://:9093",
        "controller.listener.names": "CONTROLLER",
        "advertised.listeners": "SSL://broker.example:9094",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SSL:SSL,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "SSL",
    })
    bound = [(spec.name, spec.security_protocol) for spec in listeners.listeners(config)]
    assert bound == [("PLAINTEXT", "PLAINTEXT"), ("SSL", "SSL")]  # CONTROLLER is not bound
    endpoints = listeners.advertised_endpoints(
        config, {"PLAINTEXT": ("0.0.0.0", 1111), "SSL": ("127.0.0.1", 2222)})
    assert [(e.listener, e.host, e.port) for e in endpoints] == [("SSL", "broker.example", 9094)]
    assert listeners.inter_broker_listener(config) == "SSL"
    listeners.check_inter_broker_listener(config, endpoints)
    unadvertised = props(**{"listeners": "PLAINTEXT://:0,SSL://:0"})
    endpoints = listeners.advertised_endpoints(
        unadvertised, {"PLAINTEXT": ("0.0.0.0", 1111), "SSL": ("0.0.0.0", 2222)})
    assert [(e.listener, e.host, e.port) for e in endpoints] == [
        ("PLAINTEXT", "localhost", 1111), ("SSL", "localhost", 2222)]
    with pytest.raises(InvalidConfigError, match="listener PLAINTEXT is not among"):
        listeners.check_inter_broker_listener(unadvertised, endpoints[1:])


@pytest.mark.parametrize(("settings", "message"), [
    ({"listeners": "PLAINTEXT://:1,PLAINTEXT://:2"}, "listener name PLAINTEXT appears twice"),
    ({"listeners": "PLAINTEXT://:9000,SSL://:9000"}, "port 9000 appears twice"),
    ({"listeners": "PLAINTEXT://:0", "advertised.listeners": "SSL://h:1"},
     "listener SSL is not in listeners"),
])
def test_listener_refusals(settings: dict[str, str], message: str) -> None:
    config = props(**settings)
    with pytest.raises(InvalidConfigError, match=message):
        listeners.advertised_endpoints(config, {s.name: (s.host, 1)
                                                for s in listeners.listeners(config)})
