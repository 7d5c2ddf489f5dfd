"""Kafka's own Java tools over an SSL listener with mutual TLS, configured as
a Kafka user would: PKCS12 keystores on both sides, the truststore made by
keytool (which the broker reads too), the client's properties file passed
with --command-config."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from strom.testing import EmbeddedBroker
from strom.testing.tls import TestCertificateAuthority
from tests.interop.clients import KAFKA_LIBS, run_kafka_tool

pytestmark = [pytest.mark.java]


def pkcs12_keystore(key_pem: Path, chain_pem: Path, path: Path, password: str) -> Path:
    key = serialization.load_pem_private_key(key_pem.read_bytes(), None)
    chain = x509.load_pem_x509_certificates(chain_pem.read_bytes())
    path.write_bytes(pkcs12.serialize_key_and_certificates(
        b"key", key, chain[0], chain[1:],  # type: ignore[arg-type]
        serialization.BestAvailableEncryption(password.encode())))
    return path


@pytest.fixture
def java_tools() -> None:
    if shutil.which("java") is None or shutil.which("keytool") is None:
        pytest.skip("java/keytool are not installed (make system-deps)")
    if not list(KAFKA_LIBS.glob("kafka-tools-*.jar")):
        pytest.skip("Kafka jars missing (make kafka-jars)")


def test_kafka_console_tools_over_mutual_tls_with_pkcs12_stores(
        java_tools: None, tmp_path: Path) -> None:
    ca = TestCertificateAuthority(tmp_path / "ca")
    truststore = tmp_path / "truststore.p12"
    subprocess.run(["keytool", "-importcert", "-noprompt", "-alias", "ca", "-file",
                    str(ca.ca_path), "-keystore", str(truststore), "-storetype", "PKCS12",
                    "-storepass", "trustpass"], check=True, capture_output=True, timeout=60)
    broker_store = pkcs12_keystore(ca.server_keystore_path, ca.server_keystore_path,
                                   tmp_path / "broker.p12", "brokerpass")
    alice = ca.client_certificate("alice")
    client_store = pkcs12_keystore(alice.key_path, alice.cert_path, tmp_path / "alice.p12",
                                   "alicepass")
    overrides = {
        "listeners": "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
        "ssl.keystore.type": "PKCS12", "ssl.keystore.location": str(broker_store),
        "ssl.keystore.password": "brokerpass",
        "ssl.truststore.type": "PKCS12", "ssl.truststore.location": str(truststore),
        "ssl.truststore.password": "trustpass",
        "ssl.client.auth": "required",
    }
    client_config = tmp_path / "client.properties"
    client_config.write_text(
        "security.protocol=SSL\n"
        f"ssl.truststore.location={truststore}\nssl.truststore.password=trustpass\n"
        "ssl.truststore.type=PKCS12\n"
        f"ssl.keystore.location={client_store}\nssl.keystore.password=alicepass\n"
        "ssl.key.password=alicepass\nssl.keystore.type=PKCS12\n")
    topic = f"java-tls-{uuid.uuid4().hex[:8]}"
    with EmbeddedBroker(overrides=overrides) as broker:
        bootstrap = broker.bootstrap_for("SSL")
        run_kafka_tool("topics", "--bootstrap-server", bootstrap, "--command-config",
                       str(client_config), "--create", "--topic", topic, "--partitions", "1")
        lines = [f"record {i}" for i in range(20)]
        run_kafka_tool("console-producer", "--bootstrap-server", bootstrap, "--topic", topic,
                       "--command-config", str(client_config), input="\n".join(lines) + "\n")
        out = run_kafka_tool("console-consumer", "--bootstrap-server", bootstrap,
                             "--topic", topic, "--from-beginning", "--max-messages", "20",
                             "--timeout-ms", "30000", "--command-config", str(client_config))
        assert out.stdout.splitlines() == lines
        # Without a client certificate the required client auth refuses the tool.
        anonymous = tmp_path / "anonymous.properties"
        kept = [line for line in client_config.read_text().splitlines()
                if not line.startswith(("ssl.keystore", "ssl.key."))]
        # The admin client retries a broker that drops it until its timeout.
        anonymous.write_text("\n".join([*kept, "default.api.timeout.ms=5000",
                                         "request.timeout.ms=3000"]) + "\n")
        refused = run_kafka_tool("topics", "--bootstrap-server", bootstrap, "--command-config",
                                 str(anonymous), "--list", check=False)
        assert refused.returncode != 0
        assert topic not in refused.stdout
