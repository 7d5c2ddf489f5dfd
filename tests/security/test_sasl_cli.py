"""`strom users` and `--command-config` with Kafka's client property names
against a SASL listener; the translation of Kafka's client properties."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from strom.cli.client_properties import librdkafka_properties
from strom.testing import EmbeddedBroker
from tests.cli.conftest import run_cli
from tests.security.sasl_support import sasl_overrides


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(overrides=sasl_overrides(
            **{"connection.failed.authentication.delay.ms": "10"})) as b:
        yield b


def command_config(tmp_path: Path, mechanism: str, user: str, password: str) -> Path:
    module = ("org.apache.kafka.common.security.plain.PlainLoginModule" if mechanism == "PLAIN"
              else "org.apache.kafka.common.security.scram.ScramLoginModule")
    path = tmp_path / f"{user}-{mechanism}.properties"
    # As Kafka's docs write it: a JAAS line continued with a backslash.
    path.write_text(
        "security.protocol=SASL_PLAINTEXT\n"
        f"sasl.mechanism={mechanism}\n"
        f"sasl.jaas.config={module} required \\\n"
        f'    username="{user}" password="{password}";\n'
        "ssl.truststore.type=PEM\n")
    return path


def test_users_add_list_delete(broker: EmbeddedBroker, tmp_path: Path) -> None:
    admin = command_config(tmp_path, "PLAIN", "admin", "admin-secret")
    common = ("--bootstrap-server", broker.bootstrap, "--command-config", str(admin))
    added = run_cli("users", "add", "dave", *common, stdin=b"dave-secret\n")
    assert added.code == 0, added.stderr
    listed = run_cli("users", "list", *common, "--output", "json")
    assert listed.code == 0, listed.stderr
    assert json.loads(listed.stdout)["users"] == [{"name": "dave", "credentials": [
        {"mechanism": "SCRAM-SHA-256", "iterations": 4096},
        {"mechanism": "SCRAM-SHA-512", "iterations": 4096}]}]
    # dave logs in with SCRAM through --command-config and creates a topic.
    dave = command_config(tmp_path, "SCRAM-SHA-512", "dave", "dave-secret")
    created = run_cli("topics", "create", "dave-topic", "--bootstrap-server", broker.bootstrap,
                      "--command-config", str(dave))
    assert created.code == 0, created.stderr
    deleted = run_cli("users", "delete", "dave", *common)
    assert deleted.code == 0, deleted.stderr
    refused = run_cli("topics", "list", "--bootstrap-server", broker.bootstrap,
                      "--command-config", str(dave), "--timeout", "3")
    assert refused.code != 0
    assert "uthentication" in refused.stderr


def test_users_add_refuses_bad_iterations(broker: EmbeddedBroker, tmp_path: Path) -> None:
    admin = command_config(tmp_path, "PLAIN", "admin", "admin-secret")
    result = run_cli("users", "add", "x", "--password", "p", "--iterations", "100",
                     "--bootstrap-server", broker.bootstrap, "--command-config", str(admin))
    assert result.code == 2 and "4096" in result.stderr


def test_kafka_client_properties_translated() -> None:
    assert librdkafka_properties({
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.jaas.config": 'org.apache.kafka.common.security.scram.ScramLoginModule '
                            'required username="alice" password="p\\"w";',
        "ssl.truststore.location": "/etc/ca.pem", "ssl.truststore.type": "PEM",
        "ssl.endpoint.identification.algorithm": "", "client.id": "x",
    }) == {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-256",
           "sasl.username": "alice", "sasl.password": 'p"w', "ssl.ca.location": "/etc/ca.pem",
           "ssl.endpoint.identification.algorithm": "none", "client.id": "x"}
    oauth = librdkafka_properties({
        "sasl.mechanism": "OAUTHBEARER",
        "sasl.oauthbearer.token.endpoint.url": "https://idp/token",
        "sasl.jaas.config": 'org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule'
                            ' required clientId="c" clientSecret="s" scope="kafka";'})
    assert oauth == {"sasl.mechanism": "OAUTHBEARER",
                     "sasl.oauthbearer.token.endpoint.url": "https://idp/token",
                     "sasl.oauthbearer.method": "oidc", "sasl.oauthbearer.client.id": "c",
                     "sasl.oauthbearer.client.secret": "s", "sasl.oauthbearer.scope": "kafka"}
    with pytest.raises(ValueError, match="JKS"):
        librdkafka_properties({"ssl.truststore.location": "/etc/trust.jks"})
    with pytest.raises(ValueError, match="sasl.jaas.config"):
        librdkafka_properties({"sasl.jaas.config": "broken"})


def test_pkcs12_truststore_converted(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import pkcs12

    ca = trustme.CA()
    cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    path = tmp_path / "trust.p12"
    path.write_bytes(pkcs12.serialize_key_and_certificates(
        None, None, None, [cert], __import__(
            "cryptography.hazmat.primitives.serialization",
            fromlist=["BestAvailableEncryption"]).BestAvailableEncryption(b"pw")))
    out = librdkafka_properties({"ssl.truststore.location": str(path),
                                 "ssl.truststore.password": "pw",
                                 "ssl.truststore.type": "PKCS12"})
    assert Path(out["ssl.ca.location"]).read_bytes().strip() == ca.cert_pem.bytes().strip()


def test_storage_format_add_scram_before_first_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    formatted = run_cli("storage", "format", "--override", f"log.dirs={data}",
                        "--add-scram", "SCRAM-SHA-256=[name=alice,password=alice-secret]",
                        "--add-scram",
                        'SCRAM-SHA-512=[name="admin",iterations=8192,password=admin-secret]')
    assert formatted.code == 0, formatted.stderr
    stored = (data / "strom-metadata.json").read_text()
    assert "alice-secret" not in stored and "admin-secret" not in stored
    again = run_cli("storage", "format", "--override", f"log.dirs={data}",
                    "--add-scram", "SCRAM-SHA-256=[name=bob,password=b]")
    assert again.code == 1 and "already formatted" in again.stderr
    assert run_cli("storage", "format", "--override", f"log.dirs={data}", "-g",
                   "--add-scram", "SCRAM-SHA-256=[name=bob,password=b]").code == 0
    for bad in ("SCRAM-SHA-1=[name=a,password=b]", "SCRAM-SHA-256=name=a",
                "SCRAM-SHA-256=[password=b]", "SCRAM-SHA-256=[name=a,iterations=10,password=b]"):
        result = run_cli("storage", "format", "--override", f"log.dirs={tmp_path / 'x'}",
                         "--add-scram", bad)
        assert result.code == 2, bad
    with EmbeddedBroker(data, overrides=sasl_overrides()) as b:
        scram = b.services.image.scram_credentials
        assert scram["alice"][1].iterations == 4096 and scram["admin"][2].iterations == 8192
        alice = command_config(tmp_path, "SCRAM-SHA-256", "alice", "alice-secret")
        listed = run_cli("topics", "list", "--bootstrap-server", b.bootstrap,
                         "--command-config", str(alice))
        assert listed.code == 0, listed.stderr


def test_raw_request_commands_log_in_with_sasl(broker: EmbeddedBroker, tmp_path: Path) -> None:
    admin = command_config(tmp_path, "PLAIN", "admin", "admin-secret")
    features = run_cli("cluster", "features", "describe", "--bootstrap-server",
                       broker.bootstrap, "--command-config", str(admin))
    assert features.code == 0, features.stderr
    assert "metadata.version" in features.stdout
    wrong = command_config(tmp_path, "PLAIN", "admin", "wrong")
    refused = run_cli("cluster", "features", "describe", "--bootstrap-server",
                      broker.bootstrap, "--command-config", str(wrong), "--timeout", "3")
    assert refused.code != 0


def test_produce_reason_asked_over_sasl(broker: EmbeddedBroker, tmp_path: Path) -> None:
    admin_props = command_config(tmp_path, "PLAIN", "admin", "admin-secret")
    common = ("--bootstrap-server", broker.bootstrap, "--command-config", str(admin_props))
    assert run_cli("topics", "create", "compacted-sasl", "--config", "cleanup.policy=compact",
                   *common).code == 0
    result = run_cli("produce", "compacted-sasl", *common, stdin=b"no key\n")
    assert result.code == 1
    assert "compacted topic cannot accept a record without a key" in result.stderr
