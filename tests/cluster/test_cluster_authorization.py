"""Forwarded admin requests are authorized as the client (KIP-590): two
`strom serve` brokers (real etcd) with Kafka's StandardAuthorizer and one
SASL_PLAINTEXT listener for clients and brokers (brokers log in as User:broker,
a super user). alice may create one topic, bob nothing; their CreateTopics,
sent to the broker that is not the controller, reaches the controller in an
Envelope carrying their principal, and the controller decides as for them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from tests.broker.raw_client import RawClient
from tests.cluster.brokers import WAIT, cluster_broker
from tests.cluster.etcd_process import EtcdCluster
from tests.interop.clients import wait_until

JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
        'username="broker" password="broker-secret" user_broker="broker-secret" '
        'user_admin="admin-secret" user_alice="alice-secret" user_bob="bob-secret";')
SASL_HANDSHAKE, SASL_AUTHENTICATE, CREATE_ACLS = 17, 36, 30


def login(bootstrap: str, name: str) -> RawClient:
    """A raw connection authenticated with SASL/PLAIN as `name`."""
    client = RawClient(bootstrap, client_id=f"{name}-client")
    assert client.send(SASL_HANDSHAKE, 1, {"mechanism": "PLAIN"}).error_code == 0
    token = f"\0{name}\0{name}-secret".encode()
    answer = client.send(SASL_AUTHENTICATE, 2, {"auth_bytes": token})
    assert answer.error_code == 0, answer
    return client


def create(client: RawClient, topic: str) -> Any:
    return client.send(ApiKey.CREATE_TOPICS, 5, {"topics": [
        {"name": topic, "num_partitions": 1, "replication_factor": 2, "assignments": [],
         "configs": []}], "timeout": 10000}).topics[0]


def test_forwarded_create_topics_is_authorized_as_the_client(etcd: EtcdCluster,
                                                             tmp_path: Path) -> None:
    brokers = []
    for node_id in (1, 2):
        broker = cluster_broker(tmp_path, etcd, node_id)
        broker.overrides.update({
            "listeners": f"SASL_PLAINTEXT://127.0.0.1:{broker.port}",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "sasl.mechanism.inter.broker.protocol": "PLAIN",
            "sasl.enabled.mechanisms": "PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
            "authorizer.class.name":
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:broker;User:admin",
        })
        brokers.append(broker)
    try:
        for broker in brokers:
            broker.start(timeout=WAIT)

        def controller() -> int | None:
            with login(brokers[0].bootstrap, "admin") as admin:
                answer = admin.send(ApiKey.METADATA, 12, {
                    "topics": [], "allow_auto_topic_creation": False,
                    "include_topic_authorized_operations": False})
            ok = len(answer.brokers) == 2 and answer.controller_id in (1, 2)
            return int(answer.controller_id) if ok else None

        controller_id = wait_until(controller, WAIT, what="two brokers and a controller")
        other = brokers[0] if controller_id == 2 else brokers[1]
        with login(other.bootstrap, "admin") as admin:
            made = admin.send(CREATE_ACLS, 3, {"creations": [{
                "resource_type": 2, "resource_name": "alices", "resource_pattern_type": 3,
                "principal": "User:alice", "host": "*", "operation": 5,
                "permission_type": 3}]})
            assert [r.error_code for r in made.results] == [0]
        # The ACL reaches the controller's authorizer through the metadata it commits.
        with login(other.bootstrap, "bob") as bob:
            denied = create(bob, "alices")
            assert denied.error_code == ErrorCode.topic_authorization_failed
        with login(other.bootstrap, "alice") as alice:
            assert create(alice, "alices").error_code == ErrorCode.none
            # alice may create only that one.
            assert create(alice, "others").error_code == ErrorCode.topic_authorization_failed
    finally:
        for broker in brokers:
            broker.stop()
