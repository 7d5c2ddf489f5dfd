"""TLS contexts from Kafka's ssl.* settings.

Kafka keeps keys in Java keystores; strom reads what Kafka users have:
PKCS12 keystores and truststores (keytool's default format since Java 9)
and PEM, as files (`ssl.keystore.location`, `ssl.truststore.location`) or
inline (`ssl.keystore.key`, `ssl.keystore.certificate.chain`,
`ssl.truststore.certificates`). The old JKS format is refused with the
keytool command that converts it. A PKCS12 file under the default type JKS
is read as PKCS12, as Java's keystore.type.compat does.

Python's ssl module loads a key and chain only from a file: a PKCS12 (or
inline PEM) key is written, encrypted under a random password, to a 0600
temporary file that is deleted as soon as OpenSSL has read it.

Every setting may be set for one listener (listener.name.<name>.<setting>);
an error names the setting as the operator wrote it, in one line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import ssl
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from strom.config import LISTENER_PREFIX, BrokerConfig, Value
from strom.errors import InvalidConfigError
from strom.security.principal import ANONYMOUS, KafkaPrincipal, user
from strom.security.principal_mapping import PrincipalMapper, subject_dn

log = logging.getLogger(__name__)

_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
_PROTOCOLS = {"TLS", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"}
# TLS 1.3 suites are always on in OpenSSL; Python's ssl module cannot narrow them.
_TLS13_SUITES = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                 "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_CCM_SHA256",
                 "TLS_AES_128_CCM_8_SHA256"}
_JKS_MAGIC = b"\xfe\xed\xfe\xed"
_JCEKS_MAGIC = b"\xce\xce\xce\xce"
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)

@dataclass(frozen=True, slots=True)
class _Settings:
    """The ssl.* settings as they apply to one listener (None: broker-wide)."""

    config: BrokerConfig
    listener: str | None

    def get(self, name: str) -> Value:
        if self.listener is None:
            return self.config.get(name)
        return self.config.listener_get(self.listener, name)

    def text(self, name: str) -> str | None:
        value = self.get(name)
        return str(value) if value not in (None, "") else None

    def label(self, name: str) -> str:
        """The setting's name as the operator set it, for messages."""
        if self.listener is not None and self.config.listener_raw(self.listener, name) is not None:
            return f"{LISTENER_PREFIX}{self.listener.lower()}.{name}"
        return name


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    key: PrivateKeyTypes
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]


def server_context(config: BrokerConfig, listener: str) -> ssl.SSLContext:
    """The context a TLS listener (SSL or SASL_SSL) serves with; InvalidConfigError,
    one line naming the setting, when a setting or a key store is wrong."""
    settings = _Settings(config, listener)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _configure(context, settings)
    material = load_keystore(settings)
    if material is None:
        raise InvalidConfigError(
            f"listener {listener} serves TLS but has no key: set ssl.keystore.location (or "
            f"{LISTENER_PREFIX}{listener.lower()}.ssl.keystore.location)")
    _load_key_material(context, material)
    client_auth = str(settings.get("ssl.client.auth") or "none")
    if client_auth != "none":
        context.verify_mode = (ssl.CERT_REQUIRED if client_auth == "required"
                               else ssl.CERT_OPTIONAL)
        _load_trust(context, settings, ssl.Purpose.CLIENT_AUTH)
    return context


def client_context(config: BrokerConfig, listener: str | None) -> ssl.SSLContext:
    """The context this broker connects to a peer's TLS listener with: its
    own keystore as the client certificate (if any), its truststore, and the
    host name checked when ssl.endpoint.identification.algorithm is https."""
    settings = _Settings(config, listener)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _configure(context, settings)
    algorithm = (settings.text("ssl.endpoint.identification.algorithm") or "").lower()
    if algorithm not in ("", "https"):
        raise InvalidConfigError(f"{settings.label('ssl.endpoint.identification.algorithm')}: "
                                 f"unknown algorithm {algorithm!r}; use https or empty")
    context.check_hostname = algorithm == "https"
    context.verify_mode = ssl.CERT_REQUIRED
    _load_trust(context, settings, ssl.Purpose.SERVER_AUTH)
    material = load_keystore(settings)
    if material is not None:
        _load_key_material(context, material)
    return context


def _configure(context: ssl.SSLContext, settings: _Settings) -> None:
    protocol = settings.text("ssl.protocol") or "TLSv1.3"
    if protocol not in _PROTOCOLS:
        raise InvalidConfigError(f"{settings.label('ssl.protocol')}: unknown protocol "
                                 f"{protocol!r}; use TLSv1.3 or TLSv1.2")
    enabled = settings.get("ssl.enabled.protocols") or ["TLSv1.2", "TLSv1.3"]
    assert isinstance(enabled, list)
    versions = []
    for name in enabled:
        if name not in _VERSIONS:
            raise InvalidConfigError(
                f"{settings.label('ssl.enabled.protocols')}: unknown protocol {name!r}; "
                "use TLSv1.2 and/or TLSv1.3")
        versions.append(_VERSIONS[name])
    context.minimum_version = min(versions)
    context.maximum_version = max(versions)
    suites = settings.get("ssl.cipher.suites")
    if isinstance(suites, list) and suites:
        _set_ciphers(context, settings, suites, ssl.TLSVersion.TLSv1_2 in versions
                     or min(versions) < ssl.TLSVersion.TLSv1_2)


def _set_ciphers(context: ssl.SSLContext, settings: _Settings, suites: Sequence[str],
                 tls12: bool) -> None:
    label = settings.label("ssl.cipher.suites")
    known = {c["name"] for c in ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).get_ciphers()}
    names = []
    for suite in suites:
        if suite in _TLS13_SUITES:
            continue
        name = suite if suite in known else _openssl_name(suite)
        if name not in known:
            raise InvalidConfigError(f"{label}: unknown or disabled cipher suite {suite!r}")
        names.append(name)
    if not names:
        if tls12:
            raise InvalidConfigError(
                f"{label} names only TLS 1.3 suites, which cannot be restricted; list TLS 1.2 "
                "suites too or set ssl.enabled.protocols=TLSv1.3")
        return
    try:
        context.set_ciphers(":".join(names))
    except ssl.SSLError as exc:
        raise InvalidConfigError(f"{label}: {exc.reason or exc}") from None


def _openssl_name(iana: str) -> str:
    """TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 (Java's, IANA's) -> ECDHE-RSA-AES128-GCM-SHA256."""
    match = re.fullmatch(r"TLS_(?:(ECDHE|DHE)_(RSA|ECDSA)|RSA)_WITH_(AES_(128|256)_(GCM|CBC)"
                         r"|CHACHA20_POLY1305)_(SHA|SHA256|SHA384)", iana)
    if match is None:
        return iana
    kex, auth, cipher, bits, mode, mac = match.groups()
    parts = [kex, "ECDSA" if auth == "ECDSA" else ("RSA" if kex else None)]
    prefix = "-".join(p for p in parts if p)
    if cipher == "CHACHA20_POLY1305":
        body = "CHACHA20-POLY1305"
    elif mode == "GCM":
        body = f"AES{bits}-GCM-{mac}"
    else:
        body = f"AES{bits}-{mac}"
    return f"{prefix}-{body}" if prefix else body


# --- key stores ------------------------------------------------------------------------


def load_keystore(settings: _Settings) -> KeyMaterial | None:
    """The private key and certificate chain the settings name, or None."""
    kind = (settings.text("ssl.keystore.type") or "JKS").upper()
    inline_key = settings.text("ssl.keystore.key")
    inline_chain = settings.text("ssl.keystore.certificate.chain")
    location = settings.text("ssl.keystore.location")
    key_password = settings.text("ssl.key.password")
    if inline_key is not None or inline_chain is not None:
        label = settings.label("ssl.keystore.key" if inline_key else
                               "ssl.keystore.certificate.chain")
        if kind != "PEM":
            raise InvalidConfigError(f"{label} needs ssl.keystore.type=PEM")
        if location is not None:
            raise InvalidConfigError(f"{label} and {settings.label('ssl.keystore.location')} "
                                     "are both set; use one")
        if inline_key is None or inline_chain is None:
            raise InvalidConfigError(
                f"{label} needs ssl.keystore.key and ssl.keystore.certificate.chain together")
        return _pem_material(inline_key + "\n" + inline_chain, key_password,
                             settings.label("ssl.keystore.key"))
    if location is None:
        return None
    label = settings.label("ssl.keystore.location")
    data = _read(location, label)
    found = _sniff(data, location, label, "ssl.keystore.type", kind)
    if found == "PEM":
        return _pem_material(data.decode("utf-8", "replace"),
                             key_password or settings.text("ssl.keystore.password"),
                             f"{label} ({location})")
    password = settings.text("ssl.keystore.password")
    try:
        key, certificate, extra = pkcs12.load_key_and_certificates(
            data, password.encode() if password is not None else None)
    except (ValueError, TypeError):
        raise InvalidConfigError(
            f"{label}: cannot read {location} as PKCS12: wrong "
            f"{settings.label('ssl.keystore.password')}, or not a PKCS12 file") from None
    if key is None or certificate is None:
        raise InvalidConfigError(f"{label}: {location} holds no private key with its "
                                 "certificate (a truststore given as keystore?)")
    return _checked(KeyMaterial(key, certificate, tuple(extra)), f"{label} ({location})")


def _pem_material(text: str, password: str | None, label: str) -> KeyMaterial:
    blocks = _pem_blocks(text)
    keys = [b for b in blocks if b[0].endswith("PRIVATE KEY")]
    certificates = [x509.load_pem_x509_certificate(pem.encode())
                    for kind, pem in blocks if kind == "CERTIFICATE"]
    if len(keys) != 1 or not certificates:
        raise InvalidConfigError(f"{label}: expected one PEM private key and its certificate "
                                 f"chain, found {len(keys)} key(s) and "
                                 f"{len(certificates)} certificate(s)")
    kind, pem = keys[0]
    try:
        key = serialization.load_pem_private_key(
            pem.encode(), password.encode() if password is not None else None)
    except TypeError:
        raise InvalidConfigError(f"{label}: the private key is encrypted; set ssl.key.password"
                                 if kind == "ENCRYPTED PRIVATE KEY" or password is None else
                                 f"{label}: the private key is not encrypted; unset "
                                 "ssl.key.password") from None
    except ValueError:
        raise InvalidConfigError(f"{label}: cannot decrypt the private key: wrong "
                                 "ssl.key.password, or not a PEM key") from None
    return _checked(KeyMaterial(key, certificates[0], tuple(certificates[1:])), label)


def _checked(material: KeyMaterial, label: str) -> KeyMaterial:
    public = material.key.public_key()
    if public != material.certificate.public_key():
        raise InvalidConfigError(f"{label}: the private key does not belong to the first "
                                 "certificate of the chain")
    return material


def _load_key_material(context: ssl.SSLContext, material: KeyMaterial) -> None:
    password = secrets.token_urlsafe(24)
    pem = material.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password.encode()))
    for certificate in (material.certificate, *material.chain):
        pem += certificate.public_bytes(serialization.Encoding.PEM)
    # mkstemp creates the file 0600, readable by this user only; it lives only
    # while OpenSSL reads it, and the key in it is encrypted besides.
    fd, path = tempfile.mkstemp(prefix="strom-tls-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        context.load_cert_chain(path, password=password)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _load_trust(context: ssl.SSLContext, settings: _Settings, purpose: ssl.Purpose) -> None:
    certificates = load_truststore(settings)
    if certificates is None:
        # Kafka falls back to the JVM's default trust store; strom to the system's.
        context.load_default_certs(purpose)
        return
    context.load_verify_locations(cadata="".join(
        c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates))


def load_truststore(settings: _Settings) -> list[x509.Certificate] | None:
    kind = (settings.text("ssl.truststore.type") or "JKS").upper()
    inline = settings.text("ssl.truststore.certificates")
    location = settings.text("ssl.truststore.location")
    if inline is not None:
        label = settings.label("ssl.truststore.certificates")
        if kind != "PEM":
            raise InvalidConfigError(f"{label} needs ssl.truststore.type=PEM")
        if location is not None:
            raise InvalidConfigError(f"{label} and {settings.label('ssl.truststore.location')}"
                                     " are both set; use one")
        return _pem_certificates(inline, label)
    if location is None:
        return None
    label = settings.label("ssl.truststore.location")
    data = _read(location, label)
    if _sniff(data, location, label, "ssl.truststore.type", kind) == "PEM":
        return _pem_certificates(data.decode("utf-8", "replace"), f"{label} ({location})")
    password = settings.text("ssl.truststore.password")
    try:
        _, certificate, extra = pkcs12.load_key_and_certificates(
            data, password.encode() if password is not None else None)
    except (ValueError, TypeError):
        raise InvalidConfigError(
            f"{label}: cannot read {location} as PKCS12: wrong "
            f"{settings.label('ssl.truststore.password')}, or not a PKCS12 file") from None
    certificates = ([certificate] if certificate is not None else []) + list(extra)
    if not certificates:
        raise InvalidConfigError(f"{label}: {location} holds no certificates")
    return certificates


def _pem_certificates(text: str, label: str) -> list[x509.Certificate]:
    try:
        certificates = [x509.load_pem_x509_certificate(pem.encode())
                        for kind, pem in _pem_blocks(text) if kind == "CERTIFICATE"]
    except ValueError as exc:
        raise InvalidConfigError(f"{label}: bad PEM certificate ({exc})") from None
    if not certificates:
        raise InvalidConfigError(f"{label}: no PEM certificate found")
    return certificates


def _pem_blocks(text: str) -> list[tuple[str, str]]:
    """(type, PEM) of each block, re-wrapped: a PEM value in a properties file
    continued with backslashes arrives as one line (Kafka's PemParser accepts it)."""
    blocks = []
    for kind, body in _PEM_BLOCK.findall(text):
        base64 = "".join(body.split())
        lines = [base64[i:i + 64] for i in range(0, len(base64), 64)]
        blocks.append((kind, "\n".join([f"-----BEGIN {kind}-----", *lines,
                                        f"-----END {kind}-----", ""])))
    return blocks


def _read(location: str, label: str) -> bytes:
    try:
        with open(location, "rb") as f:
            return f.read()
    except OSError as exc:
        raise InvalidConfigError(f"{label}: cannot read {location}: "
                                 f"{exc.strerror or exc}") from None


def _sniff(data: bytes, location: str, label: str, type_setting: str, kind: str) -> str:
    """PEM or PKCS12, by content and the configured type; JKS refused."""
    if data.startswith(_JKS_MAGIC) or data.startswith(_JCEKS_MAGIC):
        fmt = "JKS" if data.startswith(_JKS_MAGIC) else "JCEKS"
        raise InvalidConfigError(
            f"{label}: {location} is a {fmt} keystore, which strom cannot read; convert it "
            f"with keytool -importkeystore -srckeystore {location} -destkeystore "
            f"{location}.p12 -deststoretype PKCS12, then set {type_setting}=PKCS12")
    is_pem = b"-----BEGIN " in data[:4096]
    if kind == "PEM":
        if not is_pem:
            raise InvalidConfigError(f"{label}: {location} is not PEM ({type_setting}=PEM)")
        return "PEM"
    if is_pem:
        raise InvalidConfigError(f"{label}: {location} is PEM; set {type_setting}=PEM")
    return "PKCS12"


def tls_principal(config: BrokerConfig, listener: str
                  ) -> Callable[[ssl.SSLObject], KafkaPrincipal]:
    """The principal of a connection on an SSL listener, from its client
    certificate as Kafka's DefaultKafkaPrincipalBuilder gives it: User:<the
    subject DN mapped by ssl.principal.mapping.rules>, ANONYMOUS without a
    certificate. Raises NoMatchingRuleError when no rule applies (the
    connection is refused, as Kafka fails its authentication)."""
    rules = config.listener_get(listener, "ssl.principal.mapping.rules")
    mapper = PrincipalMapper.from_rules(str(rules) if rules else None)

    def principal(ssl_object: ssl.SSLObject) -> KafkaPrincipal:
        der = ssl_object.getpeercert(binary_form=True)
        if not der:
            return ANONYMOUS
        return user(mapper.name(subject_dn(der)))

    return principal
