"""The Java client through Kafka's own tools: kafka-configs.sh creates a SCRAM
user (AlterUserScramCredentials) logged in as the PLAIN super user from the
JAAS config, describes it, and the console producer and consumer log in with
SCRAM-SHA-512; a wrong password is refused."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from strom.testing import EmbeddedBroker
from tests.interop.clients import KAFKA_LIBS, run_kafka_tool
from tests.security.sasl_support import sasl_overrides

pytestmark = pytest.mark.java


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    if shutil.which("java") is None:
        pytest.skip("java is not installed (make system-deps)")
    if not list(KAFKA_LIBS.glob("kafka-tools-*.jar")):
        pytest.skip("Kafka jars missing (make kafka-jars)")
    with EmbeddedBroker(overrides=sasl_overrides(
            **{"connection.failed.authentication.delay.ms": "10"})) as b:
        yield b


def client_properties(tmp_path: Path, name: str, mechanism: str, user: str,
                      password: str) -> Path:
    module = ("org.apache.kafka.common.security.plain.PlainLoginModule" if mechanism == "PLAIN"
              else "org.apache.kafka.common.security.scram.ScramLoginModule")
    path = tmp_path / name
    path.write_text("security.protocol=SASL_PLAINTEXT\n"
                    f"sasl.mechanism={mechanism}\n"
                    f'sasl.jaas.config={module} required username="{user}" '
                    f'password="{password}";\n')
    return path


def test_kafka_configs_creates_scram_user_and_java_clients_use_it(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    admin = client_properties(tmp_path, "admin.properties", "PLAIN", "admin", "admin-secret")
    # One mechanism per request: Kafka's controller (ScramControlManager) refuses a
    # user named twice in one AlterUserScramCredentials (DUPLICATE_RESOURCE), and so
    # does strom; two mechanisms in one --add-config are refused the same way.
    for credential in ("SCRAM-SHA-256=[iterations=8192,password=erin-secret]",
                       "SCRAM-SHA-512=[password=erin-secret]"):
        run_kafka_tool("configs", "--bootstrap-server", broker.bootstrap,
                       "--command-config", str(admin), "--alter", "--add-config", credential,
                       "--entity-type", "users", "--entity-name", "erin")
    both = run_kafka_tool("configs", "--bootstrap-server", broker.bootstrap,
                          "--command-config", str(admin), "--alter", "--add-config",
                          "SCRAM-SHA-256=[password=x],SCRAM-SHA-512=[password=x]",
                          "--entity-type", "users", "--entity-name", "frank", check=False)
    assert "A user credential cannot be altered twice in the same request" in both.stderr
    described = run_kafka_tool("configs", "--bootstrap-server", broker.bootstrap,
                               "--command-config", str(admin), "--describe",
                               "--entity-type", "users", "--entity-name", "erin").stdout
    assert "SCRAM-SHA-256=iterations=8192" in described
    assert "SCRAM-SHA-512=iterations=4096" in described

    erin = client_properties(tmp_path, "erin.properties", "SCRAM-SHA-512", "erin",
                             "erin-secret")
    topic = f"java-scram-{uuid.uuid4().hex[:6]}"
    run_kafka_tool("console-producer", "--bootstrap-server", broker.bootstrap,
                   "--topic", topic, "--producer.config", str(erin),
                   input="one\ntwo\n")
    consumed = run_kafka_tool("console-consumer", "--bootstrap-server", broker.bootstrap,
                              "--topic", topic, "--from-beginning", "--max-messages", "2",
                              "--timeout-ms", "20000", "--consumer.config", str(erin)).stdout
    assert [line for line in consumed.splitlines() if line in ("one", "two")] == ["one", "two"]

    wrong = client_properties(tmp_path, "wrong.properties", "SCRAM-SHA-256", "erin", "nope")
    refused = run_kafka_tool("topics", "--bootstrap-server", broker.bootstrap,
                             "--command-config", str(wrong), "--list", check=False,
                             timeout=60)
    assert refused.returncode != 0
    assert "Authentication failed" in refused.stderr + refused.stdout
