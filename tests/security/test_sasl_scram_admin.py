"""SCRAM users managed over the wire: AlterUserScramCredentials and
DescribeUserScramCredentials with Kafka's validation and error codes,
through confluent-kafka's admin client and raw requests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from strom.protocol.api import ApiKey
from strom.testing import EmbeddedBroker
from tests.broker.raw_client import RawClient
from tests.security.sasl_support import client_config, sasl_overrides


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(overrides=sasl_overrides(
            **{"connection.failed.authentication.delay.ms": "10"})) as b:
        yield b


def admin(broker: EmbeddedBroker) -> AdminClient:
    return AdminClient(client_config(broker, "PLAIN", "admin", "admin-secret"))


def can_log_in(broker: EmbeddedBroker, mechanism: str, name: str, password: str) -> bool:
    client = AdminClient(client_config(broker, mechanism, name, password))
    try:
        client.list_topics(timeout=3)
    except KafkaException:
        return False
    return True


def alter(client: AdminClient, changes: list[Any]) -> dict[str, Any]:
    futures = client.alter_user_scram_credentials(changes)
    outcome: dict[str, Any] = {}
    for user, future in futures.items():
        try:
            future.result(10)
            outcome[user] = None
        except KafkaException as exc:
            outcome[user] = exc.args[0]
    return outcome


def test_first_admin_creates_scram_users(broker: EmbeddedBroker) -> None:
    client = admin(broker)
    sha512 = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
    sha256 = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096)
    assert alter(client, [UserScramCredentialUpsertion("bob", sha512, b"bob-secret"),
                          UserScramCredentialUpsertion("carol", sha256, b"carol-secret")]) == {
        "bob": None, "carol": None}
    assert can_log_in(broker, "SCRAM-SHA-512", "bob", "bob-secret")
    assert not can_log_in(broker, "SCRAM-SHA-256", "bob", "bob-secret")  # no such credential
    assert not can_log_in(broker, "SCRAM-SHA-512", "bob", "wrong")
    assert can_log_in(broker, "SCRAM-SHA-256", "carol", "carol-secret")
    described = {user: future.result(10) for user, future in
                 client.describe_user_scram_credentials(["bob"]).items()}
    (info,) = described["bob"].scram_credential_infos
    assert (info.mechanism, info.iterations) == (ScramMechanism.SCRAM_SHA_512, 8192)
    # Never stored in clear: only salt and keys in the image.
    record = broker.services.image.scram_credentials["bob"][2]
    assert "bob-secret" not in repr(record)
    # Changing the password: the old one stops working.
    assert alter(client, [UserScramCredentialUpsertion("bob", sha512, b"new-secret")]) == {
        "bob": None}
    assert can_log_in(broker, "SCRAM-SHA-512", "bob", "new-secret")
    assert not can_log_in(broker, "SCRAM-SHA-512", "bob", "bob-secret")
    assert alter(client, [UserScramCredentialDeletion("carol",
                                                      ScramMechanism.SCRAM_SHA_256)]) == {
        "carol": None}
    assert not can_log_in(broker, "SCRAM-SHA-256", "carol", "carol-secret")


def test_kafka_validation_and_codes(broker: EmbeddedBroker) -> None:
    client = admin(broker)
    sha256 = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096)
    outcome = alter(client, [
        UserScramCredentialDeletion("ghost", ScramMechanism.SCRAM_SHA_256),
        UserScramCredentialUpsertion("few", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256,
                                                                4095), b"x"),
        UserScramCredentialUpsertion("many", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256,
                                                                 16385), b"x"),
        UserScramCredentialUpsertion("twice", sha256, b"x"),
        UserScramCredentialUpsertion("twice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512,
                                                                  4096), b"y"),
        UserScramCredentialUpsertion("fine", sha256, b"x"),
    ])
    assert outcome["fine"] is None
    assert outcome["ghost"].name() == "RESOURCE_NOT_FOUND"
    assert outcome["few"].name() == "UNACCEPTABLE_CREDENTIAL"
    assert outcome["few"].str() == "Too few iterations"
    assert outcome["many"].str() == "Too many iterations"
    assert outcome["twice"].name() == "DUPLICATE_RESOURCE"
    assert "twice" not in broker.services.image.scram_credentials
    with pytest.raises(KafkaException) as info:
        client.describe_user_scram_credentials(["nobody"])["nobody"].result(10)
    assert "RESOURCE_NOT_FOUND" in str(info.value) or "does not exist" in str(info.value)


def _admin_bootstrap(broker: EmbeddedBroker) -> str:
    return broker.bootstrap


def test_raw_requests_on_plaintext_listener() -> None:
    with EmbeddedBroker() as plain, RawClient(plain.bootstrap) as raw:
        response = raw.send(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, 0, {
            "deletions": [],
            "upsertions": [
                {"name": "", "mechanism": 1, "iterations": 4096, "salt": b"s",
                 "salted_password": b"p" * 32},
                {"name": "u", "mechanism": 3, "iterations": 4096, "salt": b"s",
                 "salted_password": b"p" * 32},
                {"name": "ok", "mechanism": 2, "iterations": 4096, "salt": b"salt",
                 "salted_password": b"p" * 64}]})
        codes = {r.user: (r.error_code, r.error_message) for r in response.results}
        assert codes[""] == (93, "Username must not be empty")  # UNACCEPTABLE_CREDENTIAL
        assert codes["u"] == (33, "Unknown SCRAM mechanism")  # UNSUPPORTED_SASL_MECHANISM
        assert codes["ok"] == (0, None)
        described = raw.send(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, 0,
                             {"users": [{"name": "ok"}, {"name": "ok"}, {"name": "x"}]})
        codes = {r.user: r.error_code for r in described.results}
        assert codes == {"ok": 92, "x": 91}  # DUPLICATE_RESOURCE, RESOURCE_NOT_FOUND
        everyone = raw.send(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, 0, {"users": None})
        assert [(r.user, [(c.mechanism, c.iterations) for c in r.credential_infos])
                for r in everyone.results] == [("ok", [(2, 4096)])]
