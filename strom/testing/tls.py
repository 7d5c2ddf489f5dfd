"""Throw-away certificates for TLS tests (needs `trustme`, the test extra).

    ca = TestCertificateAuthority(tmp_path)
    with EmbeddedBroker(tls=ca, tls_client_auth="required") as broker:
        alice = ca.client_certificate("alice")
        Producer({"bootstrap.servers": broker.bootstrap_for("SSL"),
                  **ca.confluent_config(alice)})

The broker's certificate names localhost and 127.0.0.1; files are PEM
(key and chain in one file, as Kafka's ssl.keystore.type=PEM reads it).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from strom.security.principal_mapping import subject_dn


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """A client's key and certificate chain, PEM files."""

    common_name: str
    key_path: Path
    cert_path: Path  # the leaf first, then the CA
    dn: str  # its subject, as Kafka's principal builder names it


class TestCertificateAuthority:
    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path, hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
                 *, organization: str = "strom tests") -> None:
        import trustme

        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._ca = trustme.CA(organization_name=organization)
        self.ca_path = self.directory / "ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_path))
        server = self._ca.issue_cert(*hosts, common_name="strom-broker")
        self.server_keystore_path = self.directory / "server-keystore.pem"
        server.private_key_and_cert_chain_pem.write_to_path(str(self.server_keystore_path))
        self._organization = organization

    def server_overrides(self, client_auth: str = "none", listener: str | None = None
                         ) -> dict[str, str]:
        """Broker settings (Kafka's names) for a TLS listener with these
        certificates; `listener` sets them for that listener only
        (listener.name.<listener>.ssl.*)."""
        prefix = f"listener.name.{listener.lower()}." if listener else ""
        return {f"{prefix}{k}": v for k, v in {
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.server_keystore_path),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_path),
            "ssl.client.auth": client_auth,
        }.items()}

    def client_certificate(self, common_name: str, organization_unit: str | None = None,
                           ) -> ClientCertificate:
        leaf = self._ca.issue_cert(f"{common_name}.clients.test", common_name=common_name,
                                   organization_name=self._organization,
                                   organization_unit_name=organization_unit)
        key_path = self.directory / f"client-{common_name}.key"
        cert_path = self.directory / f"client-{common_name}.pem"
        leaf.private_key_pem.write_to_path(str(key_path))
        with cert_path.open("wb") as out:
            for blob in leaf.cert_chain_pems:
                out.write(blob.bytes())
        der = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).public_bytes(
            Encoding.DER)
        return ClientCertificate(common_name, key_path, cert_path, subject_dn(der))

    def confluent_config(self, client: ClientCertificate | None = None) -> dict[str, Any]:
        """librdkafka (confluent-kafka) settings for SSL to the broker."""
        config: dict[str, Any] = {"security.protocol": "SSL", "ssl.ca.location": str(self.ca_path)}
        if client is not None:
            config.update({"ssl.certificate.location": str(client.cert_path),
                           "ssl.key.location": str(client.key_path)})
        return config

    def ssl_context(self, client: ClientCertificate | None = None) -> ssl.SSLContext:
        """A client context (kafka-python's ssl_context, aiokafka's, raw sockets)."""
        context = ssl.create_default_context(cafile=str(self.ca_path))
        if client is not None:
            context.load_cert_chain(str(client.cert_path), str(client.key_path))
        return context
