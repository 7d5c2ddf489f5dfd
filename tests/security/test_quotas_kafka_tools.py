"""Apache Kafka's kafka-configs.sh manages strom's client quotas unchanged
(AlterClientQuotas / DescribeClientQuotas, Kafka 4.x's ConfigCommand):
--entity-type users, clients (and their defaults) and ips."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from strom.testing import EmbeddedBroker
from tests.interop.clients import KAFKA_LIBS, run_kafka_tool

pytestmark = [pytest.mark.java]


@pytest.fixture(autouse=True)
def _java() -> None:
    if shutil.which("java") is None:
        pytest.skip("java is not installed (make system-deps)")
    if not list(KAFKA_LIBS.glob("kafka-tools-*.jar")):
        pytest.skip("Kafka's jars are not in .cache/kafka/libs (make kafka-jars)")


def configs(broker: EmbeddedBroker, *args: str, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
    return run_kafka_tool("configs", "--bootstrap-server", broker.bootstrap, *args,
                          check=check)


def test_kafka_configs_users_and_clients(fresh_broker: EmbeddedBroker) -> None:
    out = configs(fresh_broker, "--alter", "--add-config",
                  "producer_byte_rate=1024,consumer_byte_rate=2048",
                  "--entity-type", "users", "--entity-name", "alice").stdout
    assert "Completed updating config for user alice." in out
    out = configs(fresh_broker, "--alter", "--add-config", "request_percentage=50",
                  "--entity-type", "clients", "--entity-default").stdout
    assert "Completed updating default config for clients" in out
    configs(fresh_broker, "--alter", "--delete-config", "consumer_byte_rate",
            "--entity-type", "users", "--entity-name", "alice")
    out = configs(fresh_broker, "--describe", "--entity-type", "users",
                  "--entity-name", "alice").stdout
    assert "Quota configs for user-principal 'alice' are producer_byte_rate=1024.0" in out
    out = configs(fresh_broker, "--describe", "--entity-type", "clients",
                  "--entity-default").stdout
    assert "Quota configs for the default client-id are request_percentage=50.0" in out
    configs(fresh_broker, "--alter", "--add-config", "connection_creation_rate=10",
            "--entity-type", "ips", "--entity-name", "127.0.0.9")
    out = configs(fresh_broker, "--describe", "--entity-type", "ips", "--entity-name",
                  "127.0.0.9").stdout
    assert "Quota configs for ip '127.0.0.9' are connection_creation_rate=10.0" in out
    bad = configs(fresh_broker, "--alter", "--add-config", "producer_byte_rate=-5",
                  "--entity-type", "users", "--entity-name", "bob", check=False)
    assert bad.returncode != 0
    assert "InvalidRequestException: Quota producer_byte_rate must be greater than 0" in (
        bad.stdout + bad.stderr)
