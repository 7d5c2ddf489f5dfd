"""CreateAcls / DescribeAcls / DeleteAcls against a real broker over real
sockets: confluent-kafka's and kafka-python's admin clients, raw frames for
bad requests, enforcement on a PLAINTEXT listener (principal User:ANONYMOUS,
super user or not), persistence across a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from strom.errors import ErrorCode
from strom.testing import EmbeddedBroker
from tests.broker.raw_client import send

STANDARD = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
CREATE_ACLS, DESCRIBE_ACLS, DELETE_ACLS = 30, 29, 31


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """ACLs on; the PLAINTEXT listener's User:ANONYMOUS is a super user."""
    with EmbeddedBroker(tmp_path_factory.mktemp("acls"), overrides={
            "authorizer.class.name": STANDARD, "super.users": "User:ANONYMOUS"}) as b:
        yield b


def _admin(broker: EmbeddedBroker) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def _binding(name: str, principal: str = "User:alice",
             op: AclOperation = AclOperation.READ,
             pattern: ResourcePatternType = ResourcePatternType.LITERAL,
             permission: AclPermissionType = AclPermissionType.ALLOW,
             rtype: ResourceType = ResourceType.TOPIC) -> AclBinding:
    return AclBinding(rtype, name, pattern, principal, "*", op, permission)


def _filter(name: str | None = None, pattern: ResourcePatternType = ResourcePatternType.ANY,
            rtype: ResourceType = ResourceType.ANY, principal: str | None = None
            ) -> AclBindingFilter:
    return AclBindingFilter(rtype, name, pattern, principal, None, AclOperation.ANY,
                            AclPermissionType.ANY)


def _creation(**fields: Any) -> dict[str, Any]:
    base = {"resource_type": 2, "resource_name": "t", "resource_pattern_type": 3,
            "principal": "User:alice", "host": "*", "operation": 3, "permission_type": 3}
    base.update(fields)
    return base


def _describe_filter(**fields: Any) -> dict[str, Any]:
    base = {"resource_type_filter": 1, "resource_name_filter": None,
            "pattern_type_filter": 1, "principal_filter": None, "host_filter": None,
            "operation": 1, "permission_type": 1}
    base.update(fields)
    return base


def test_confluent_create_describe_delete(secured: EmbeddedBroker) -> None:
    admin = _admin(secured)
    bindings = [_binding("orders"), _binding("pay-", pattern=ResourcePatternType.PREFIXED,
                                             op=AclOperation.WRITE),
                _binding("*", principal="User:bob", rtype=ResourceType.GROUP,
                         permission=AclPermissionType.DENY)]
    for future in admin.create_acls(bindings, request_timeout=10).values():
        assert future.result(timeout=10) is None
    found = admin.describe_acls(_filter(), request_timeout=10).result(timeout=10)
    assert set(bindings) <= set(found)
    # MATCH: the ACLs that apply to the topic "pay-eu" (the prefixed one).
    match = admin.describe_acls(_filter("pay-eu", ResourcePatternType.MATCH,
                                        ResourceType.TOPIC),
                                request_timeout=10).result(timeout=10)
    assert match == [bindings[1]]
    deleted = admin.delete_acls([_filter(principal="User:bob")], request_timeout=10)
    assert [f.result(timeout=10) for f in deleted.values()] == [[bindings[2]]]
    left = admin.describe_acls(_filter(), request_timeout=10).result(timeout=10)
    assert bindings[2] not in left and bindings[0] in left


def test_kafka_python_admin(secured: EmbeddedBroker) -> None:
    from kafka.admin import (
        ACL,
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        KafkaAdminClient,
        ResourcePattern,
        ResourcePatternFilter,
    )
    from kafka.admin import ResourceType as KResourceType
    admin = KafkaAdminClient(bootstrap_servers=secured.bootstrap, request_timeout_ms=10000)
    try:
        acl = ACL(principal="User:kp", host="*", operation=ACLOperation.WRITE,
                  permission_type=ACLPermissionType.ALLOW,
                  resource_pattern=ResourcePattern(KResourceType.TOPIC, "kp-topic",
                                                   ACLResourcePatternType.LITERAL))
        result = admin.create_acls([acl])
        assert result["failed"] == [] and len(result["succeeded"]) == 1
        wanted = ACLFilter(principal="User:kp", host=None, operation=ACLOperation.ANY,
                           permission_type=ACLPermissionType.ANY,
                           resource_pattern=ResourcePatternFilter(
                               KResourceType.ANY, None, ACLResourcePatternType.ANY))
        acls, error = admin.describe_acls(wanted)
        assert error.errno == 0 and [a.resource_pattern.resource_name for a in acls] == [
            "kp-topic"]
        deleted = admin.delete_acls([wanted])
        assert len(deleted[0][1]) == 1
        acls, _ = admin.describe_acls(wanted)
        assert acls == []
    finally:
        admin.close()


@pytest.mark.parametrize(("fields", "message"), [
    ({"resource_type": 1}, "Invalid resourceType ANY"),
    ({"resource_type": 0}, "Invalid resourceType UNKNOWN"),
    ({"resource_type": 99}, "Invalid resourceType UNKNOWN"),
    ({"resource_pattern_type": 1}, "Invalid patternType ANY"),
    ({"resource_pattern_type": 2}, "Invalid patternType MATCH"),
    ({"operation": 1}, "Invalid operation ANY"),
    ({"permission_type": 1}, "Invalid permissionType ANY"),
    ({"resource_name": ""}, "Invalid empty resource name"),
    ({"resource_type": 4, "resource_name": "other"}, "The only valid name for the CLUSTER"),
    ({"principal": "alice"}, "TYPE:NAME"),
])
def test_bad_creations_are_invalid_request(secured: EmbeddedBroker, fields: dict[str, Any],
                                           message: str) -> None:
    good = _creation(resource_name="fine-one")
    response = send(secured.bootstrap, CREATE_ACLS, 3,
                    {"creations": [_creation(**fields), good]})
    bad, ok = response.results
    assert bad.error_code == ErrorCode.invalid_request and message in bad.error_message
    assert ok.error_code == ErrorCode.none  # each creation stands alone
    described = send(secured.bootstrap, DESCRIBE_ACLS, 3, _describe_filter(
        resource_name_filter=fields.get("resource_name", "t")))
    assert all(a.principal != "alice" for r in described.resources for a in r.acls)


def test_unknown_filters_are_invalid_request(secured: EmbeddedBroker) -> None:
    response = send(secured.bootstrap, DESCRIBE_ACLS, 3, _describe_filter(operation=0))
    assert response.error_code == ErrorCode.invalid_request
    response = send(secured.bootstrap, DELETE_ACLS, 3, {"filters": [
        _describe_filter(pattern_type_filter=0), _describe_filter(principal_filter="User:x")]})
    assert [r.error_code for r in response.filter_results] == [ErrorCode.invalid_request,
                                                                ErrorCode.none]


def test_security_disabled_without_an_authorizer(broker: EmbeddedBroker) -> None:
    created = send(broker.bootstrap, CREATE_ACLS, 3, {"creations": [_creation()]})
    assert created.results[0].error_code == ErrorCode.security_disabled
    described = send(broker.bootstrap, DESCRIBE_ACLS, 3, _describe_filter())
    assert described.error_code == ErrorCode.security_disabled
    deleted = send(broker.bootstrap, DELETE_ACLS, 3, {"filters": [_describe_filter()]})
    assert deleted.filter_results[0].error_code == ErrorCode.security_disabled


def test_acls_enforced_and_kept_across_restart(tmp_path: Path) -> None:
    """No super user; allow.everyone.if.no.acl.found lets ANONYMOUS start.
    Once an ACL names the cluster, ANONYMOUS (not named) loses CreateAcls;
    a DENY on a topic stops its creation; both hold after a restart."""
    with EmbeddedBroker(tmp_path / "data", overrides={
            "authorizer.class.name": STANDARD,
            "allow.everyone.if.no.acl.found": "true"}) as broker:
        admin = _admin(broker)
        deny_secret = _binding("secret", principal="User:ANONYMOUS",
                               op=AclOperation.CREATE, permission=AclPermissionType.DENY)
        admin_only = _binding("kafka-cluster", principal="User:admin", op=AclOperation.ALL,
                              rtype=ResourceType.BROKER)
        for future in admin.create_acls([deny_secret, admin_only],
                                        request_timeout=10).values():
            future.result(timeout=10)
        for restart in (False, True):
            if restart:
                broker.restart()
                admin = _admin(broker)
            # (librdkafka's describe_acls reports the top-level error as no ACLs.)
            described = send(broker.bootstrap, DESCRIBE_ACLS, 3, _describe_filter())
            assert described.error_code == ErrorCode.cluster_authorization_failed
            created = send(broker.bootstrap, CREATE_ACLS, 3, {"creations": [_creation()]})
            assert created.results[0].error_code == ErrorCode.cluster_authorization_failed
            topics = admin.create_topics([NewTopic("secret", 1, 1), NewTopic("open", 1, 1)],
                                         request_timeout=10)
            with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):
                topics["secret"].result(timeout=10)
            if not restart:
                topics["open"].result(timeout=10)
        assert {a for a in broker.services.image.acls} and len(
            broker.services.image.acls) == 2


@pytest.mark.parametrize("class_name", ["kafka.security.authorizer.AclAuthorizer",
                                        "com.example.MyAuthorizer"])
def test_unknown_authorizer_refused_at_start(tmp_path: Path, class_name: str) -> None:
    from strom.broker.server import Broker, StartupError
    from strom.config import BrokerConfig

    config = BrokerConfig.from_properties({
        "listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": str(tmp_path / "data"),
        "authorizer.class.name": class_name})
    with pytest.raises(StartupError, match=f"authorizer.class.name: {class_name}") as info:
        asyncio.run(Broker(config).start())
    assert "\n" not in str(info.value)
    # Refused before the logs and the metadata are opened.
    assert not (tmp_path / "data" / "meta.properties").exists()
