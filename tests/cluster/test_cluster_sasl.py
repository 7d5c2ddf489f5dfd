"""SASL between brokers: two `strom serve` processes in cluster mode (real
etcd) whose inter-broker listener is SASL_PLAINTEXT with PLAIN; followers
replicate over it (acks=all needs them), clients use the PLAINTEXT listener."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.cluster.brokers import WAIT, cluster_broker, cluster_of
from tests.cluster.etcd_process import EtcdCluster
from tests.interop.clients import wait_until
from tests.process import free_port

JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
        'username="broker" password="broker-secret" user_broker="broker-secret";')


def test_followers_replicate_over_a_sasl_inter_broker_listener(etcd: EtcdCluster,
                                                               tmp_path: Path) -> None:
    brokers = []
    for node_id in (1, 2):
        broker = cluster_broker(tmp_path, etcd, node_id)
        internal = free_port()
        broker.overrides.update({
            "listeners": f"PLAINTEXT://127.0.0.1:{broker.port},INTERNAL://127.0.0.1:{internal}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,INTERNAL:SASL_PLAINTEXT",
            "inter.broker.listener.name": "INTERNAL",
            "sasl.mechanism.inter.broker.protocol": "PLAIN",
            "listener.name.internal.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.internal.plain.sasl.jaas.config": JAAS,
            # A follower that cannot fetch stays in the ISR past the test's waits,
            # so acks=all below completes only if replication over SASL works.
            "replica.lag.time.max.ms": "120000",
        })
        brokers.append(broker)
    try:
        for broker in brokers:
            broker.start(timeout=WAIT)
        one, two = brokers
        wait_until(lambda: cluster_of(two.bootstrap, 2), WAIT, what="both brokers registered")
        admin = AdminClient({"bootstrap.servers": one.bootstrap})
        admin.create_topics([NewTopic("over-sasl", 2, 2)])["over-sasl"].result(WAIT)
        producer = Producer({"bootstrap.servers": f"{one.bootstrap},{two.bootstrap}",
                             "acks": "all", "message.timeout.ms": int(WAIT * 1000)})
        failures: list[str] = []
        for i in range(20):
            producer.produce("over-sasl", f"v{i}".encode(), partition=i % 2,
                             on_delivery=lambda err, _: err and failures.append(str(err)))
        assert producer.flush(WAIT) == 0
        assert failures == []
        # Both replicas stay in sync: the followers fetch over the SASL listener
        # (a follower that could not would drop out of the ISR).
        topic = admin.list_topics("over-sasl", timeout=10).topics["over-sasl"]
        assert all(sorted(p.isrs) == [1, 2] for p in topic.partitions.values())
        logs = "".join(b.log_path.read_text() for b in brokers)
        assert "SASL" not in logs or "authentication failed" not in logs
    finally:
        for broker in brokers:
            broker.stop()
