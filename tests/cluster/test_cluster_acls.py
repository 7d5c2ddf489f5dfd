"""ACLs in cluster mode (issue 16): real etcd, two `strom serve` processes
with the StandardAuthorizer. An ACL created through the broker that is not
the controller is forwarded (KIP-590), stored in etcd and enforced by both
brokers' authorizers; deleted the same way, it stops being enforced.

The brokers run PLAINTEXT (principal User:ANONYMOUS, also what they are to
each other) with allow.everyone.if.no.acl.found=true and no super user: the
test's DENY names one topic only, so everything else stays allowed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from tests.broker.raw_client import send
from tests.cluster.brokers import (
    WAIT,
    cluster_broker,
    cluster_of,
    controller_and_other,
    metadata_of,
)
from tests.cluster.etcd_process import EtcdCluster
from tests.interop.clients import wait_until
from tests.process import StromProcess

STANDARD = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


@pytest.fixture
def secured_brokers(etcd: EtcdCluster, tmp_path: Path) -> Iterator[list[StromProcess]]:
    started = [cluster_broker(tmp_path, etcd, node_id) for node_id in (1, 2)]
    for broker in started:
        broker.overrides.update({"authorizer.class.name": STANDARD,
                                 "allow.everyone.if.no.acl.found": "true"})
    try:
        for broker in started:
            broker.start(timeout=WAIT)
        wait_until(lambda: cluster_of(started[0].bootstrap, 2), WAIT,
                   what="2 brokers registered")
        yield started
    finally:
        for broker in started:
            broker.stop()


def _topic_error(bootstrap: str, topic: str) -> int | None:
    """The error code Metadata gives for `topic` (None: described)."""
    error = metadata_of(bootstrap, topic).topics[topic].error
    return None if error is None else int(error.code())


def test_acl_created_on_one_broker_is_enforced_by_both(
        secured_brokers: list[StromProcess]) -> None:
    controller, other = controller_and_other(secured_brokers)
    admin = AdminClient({"bootstrap.servers": other.bootstrap})
    admin.create_topics([NewTopic("hidden", 1, 1)])["hidden"].result(WAIT)
    for broker in (controller, other):
        wait_until(lambda b=broker: _topic_error(b.bootstrap, "hidden") is None, WAIT,
                   what="the topic described")

    deny = AclBinding(ResourceType.TOPIC, "hidden", ResourcePatternType.LITERAL,
                      "User:ANONYMOUS", "*", AclOperation.DESCRIBE, AclPermissionType.DENY)
    # Sent to the broker that is not the controller (a raw request: librdkafka
    # picks any broker): forwarded.
    created = send(other.bootstrap, 30, 3, {"creations": [{
        "resource_type": 2, "resource_name": "hidden", "resource_pattern_type": 3,
        "principal": "User:ANONYMOUS", "host": "*", "operation": 8, "permission_type": 2}]})
    assert [r.error_code for r in created.results] == [0]
    # Answered once the forwarding broker's own image has it: no wait there.
    assert _topic_error(other.bootstrap, "hidden") == \
        KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert _topic_error(controller.bootstrap, "hidden") == \
        KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Each broker's own answer (a raw request: librdkafka picks any broker).
    for broker in (controller, other):
        listed = send(broker.bootstrap, 29, 3, {
            "resource_type_filter": 1, "resource_name_filter": None, "pattern_type_filter": 1,
            "principal_filter": None, "host_filter": None, "operation": 1,
            "permission_type": 1})
        assert [(r.resource_name, [a.principal for a in r.acls])
                for r in listed.resources] == [("hidden", ["User:ANONYMOUS"])]

    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None,
                                  None, AclOperation.ANY, AclPermissionType.ANY)
    assert admin.describe_acls(everything, request_timeout=WAIT).result(timeout=WAIT) == [deny]
    deleted = send(other.bootstrap, 31, 3, {"filters": [{
        "resource_type_filter": 2, "resource_name_filter": "hidden", "pattern_type_filter": 3,
        "principal_filter": None, "host_filter": None, "operation": 1,
        "permission_type": 1}]})
    assert [len(r.matching_acls) for r in deleted.filter_results] == [1]
    assert _topic_error(other.bootstrap, "hidden") is None
    assert _topic_error(controller.bootstrap, "hidden") is None
