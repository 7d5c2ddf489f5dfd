"""Brokers with SASL listeners for the SASL tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from strom.security.sasl.scram import credential_from_password
from strom.testing import EmbeddedBroker

USERS = {"admin": "admin-secret", "alice": "alice-secret"}
MECHANISMS = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"


def plain_jaas(users: Mapping[str, str]) -> str:
    options = " ".join(f'user_{name}="{password}"' for name, password in users.items())
    return ('org.apache.kafka.common.security.plain.PlainLoginModule required '
            f'username="admin" password="admin-secret" {options};')


def sasl_overrides(users: Mapping[str, str] = USERS, mechanisms: str = MECHANISMS,
                   **extra: str) -> dict[str, str]:
    return {"listeners": "SASL_PLAINTEXT://127.0.0.1:0",
            "sasl.enabled.mechanisms": mechanisms,
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": plain_jaas(users),
            **extra}


def add_scram_users(broker: EmbeddedBroker, users: Mapping[str, str]) -> None:
    records = [credential_from_password(name, mechanism, password)
               for name, password in users.items()
               for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")]
    broker.run(broker.services.metadata.commit(records))


def client_config(broker: EmbeddedBroker, mechanism: str, name: str, password: str,
                  **extra: Any) -> dict[str, Any]:
    return {"bootstrap.servers": broker.bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": mechanism, "sasl.username": name, "sasl.password": password,
            "log_level": 0, **extra}
