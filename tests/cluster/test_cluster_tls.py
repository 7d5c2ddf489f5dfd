"""Two brokers whose inter-broker listener is TLS with client certificates
required: peers dial the listener named by inter.broker.listener.name (not
the first one), over TLS with their own keystore as the client certificate.
The clients' listener comes first and is plaintext, so a peer that dialled
the registration's first address, or the right one without TLS, would fail
to replicate. Each listener's Metadata names the brokers' endpoints of that
listener."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.protocol.messages import ZERO_UUID
from strom.testing.tls import TestCertificateAuthority
from tests.broker.raw_client import RawClient
from tests.cluster.brokers import WAIT, cluster_broker, cluster_of, read_values
from tests.cluster.etcd_process import EtcdCluster
from tests.interop.clients import wait_until
from tests.process import free_port


def test_replication_over_a_tls_inter_broker_listener(etcd: EtcdCluster,
                                                      tmp_path: Path) -> None:
    ca = TestCertificateAuthority(tmp_path / "ca")
    brokers = []
    internal_ports = {}
    for node_id in (1, 2):
        broker = cluster_broker(tmp_path, etcd, node_id)
        internal_ports[node_id] = free_port()
        broker.overrides.update({
            "listeners": f"CLIENT://127.0.0.1:{broker.port},"
                         f"INTERNAL://127.0.0.1:{internal_ports[node_id]}",
            "listener.security.protocol.map": "CLIENT:PLAINTEXT,INTERNAL:SSL",
            "inter.broker.listener.name": "INTERNAL",
            **ca.server_overrides("required", listener="INTERNAL"),
        })
        brokers.append(broker)
    try:
        for broker in brokers:
            broker.start(timeout=WAIT)
        one, two = brokers
        wait_until(lambda: cluster_of(one.bootstrap, 2), WAIT, what="two brokers registered")
        # Each listener answers with its own endpoints.
        metadata = AdminClient({"bootstrap.servers": one.bootstrap}).list_topics(timeout=10)
        assert sorted(b.port for b in metadata.brokers.values()) == sorted(
            b.port for b in brokers)
        client = ca.client_certificate("admin")
        over_tls = AdminClient({"bootstrap.servers": f"127.0.0.1:{internal_ports[1]}",
                                **ca.confluent_config(client)}).list_topics(timeout=10)
        assert sorted(b.port for b in over_tls.brokers.values()) == sorted(
            internal_ports.values())

        # Created through the broker that may not be the controller (forwarded
        # over the TLS listener), replicated to both, acks=all.
        admin = AdminClient({"bootstrap.servers": two.bootstrap})
        admin.create_topics([NewTopic("tls-replicated", 2, 2)])["tls-replicated"].result(WAIT)
        producer = Producer({"bootstrap.servers": one.bootstrap, "acks": "all",
                             "message.timeout.ms": int(WAIT * 1000)})
        failures: list[str] = []
        for i in range(40):
            producer.produce("tls-replicated", f"v{i}".encode(), partition=i % 2,
                             on_delivery=lambda err, _m: err and failures.append(str(err)))
        assert producer.flush(WAIT) == 0
        assert failures == []

        def in_sync() -> bool:
            topic = AdminClient({"bootstrap.servers": one.bootstrap}).list_topics(
                "tls-replicated", timeout=10).topics["tls-replicated"]
            return all(sorted(p.isrs) == [1, 2] for p in topic.partitions.values())
        wait_until(in_sync, WAIT, what="both replicas in sync")
        values = read_values(one.bootstrap, "tls-replicated", 2, 40)
        assert sum(map(len, values.values())) == 40
    finally:
        for broker in brokers:
            broker.stop()


def test_a_listener_only_one_broker_has(etcd: EtcdCluster, tmp_path: Path) -> None:
    """Kafka's answers on a listener some brokers lack: those brokers are left
    out of Metadata and DescribeCluster, partitions they lead answer
    LISTENER_NOT_FOUND."""
    one = cluster_broker(tmp_path, etcd, 1)
    two = cluster_broker(tmp_path, etcd, 2)
    extra_port = free_port()
    protocol_map = "CLIENT:PLAINTEXT,EXTRA:PLAINTEXT"
    one.overrides.update({"listeners": f"CLIENT://127.0.0.1:{one.port},"
                                       f"EXTRA://127.0.0.1:{extra_port}",
                          "listener.security.protocol.map": protocol_map,
                          "inter.broker.listener.name": "CLIENT"})
    two.overrides.update({"listeners": f"CLIENT://127.0.0.1:{two.port}",
                          "listener.security.protocol.map": protocol_map,
                          "inter.broker.listener.name": "CLIENT"})
    try:
        for broker in (one, two):
            broker.start(timeout=WAIT)
        wait_until(lambda: cluster_of(one.bootstrap, 2), WAIT, what="two brokers registered")
        admin = AdminClient({"bootstrap.servers": one.bootstrap})
        admin.create_topics([NewTopic("split", 2, 1)])["split"].result(WAIT)

        def described() -> Any:
            with RawClient(f"127.0.0.1:{extra_port}") as client:
                response = client.send(ApiKey.METADATA, 12, {
                    "topics": [{"name": "split", "topic_id": ZERO_UUID}],
                    "allow_auto_topic_creation": False,
                    "include_topic_authorized_operations": False})
            topic = response.topics[0]
            return response if topic.error_code == 0 and len(topic.partitions) == 2 else None
        response = wait_until(described, WAIT, what="the topic described on EXTRA")
        assert [(b.node_id, b.port) for b in response.brokers] == [(1, extra_port)]
        by_leader = {p.partition_index: (p.error_code, p.leader_id)
                     for p in response.topics[0].partitions}
        assert sorted(by_leader.values()) == [
            (0, 1), (int(ErrorCode.listener_not_found), -1)]
        with RawClient(f"127.0.0.1:{extra_port}") as client:
            cluster = client.send(ApiKey.DESCRIBE_CLUSTER, 1, {
                "include_cluster_authorized_operations": False})
        assert [b.broker_id for b in cluster.brokers] == [1]
    finally:
        for broker in (one, two):
            broker.stop()
