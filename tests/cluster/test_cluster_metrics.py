"""/metrics in cluster mode: a partition's leader reports it under-replicated
while a follower is away, and counts the ISR expansion when it is back."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from tests.cluster.brokers import WAIT, cluster_broker, metadata_of
from tests.cluster.etcd_process import EtcdCluster
from tests.interop.clients import wait_until
from tests.metrics.scrape import wait_for
from tests.process import StromProcess, free_port


def test_under_replicated_and_isr_changes(etcd: EtcdCluster, tmp_path: Path) -> None:
    brokers: dict[int, StromProcess] = {}
    urls: dict[int, str] = {}
    for node_id in (1, 2):
        broker = cluster_broker(tmp_path, etcd, node_id)
        port = free_port()
        broker.overrides["strom.http.listener"] = f"http://127.0.0.1:{port}"
        broker.overrides["replica.lag.time.max.ms"] = "2000"
        brokers[node_id], urls[node_id] = broker, f"http://127.0.0.1:{port}"
    try:
        for broker in brokers.values():
            broker.start(timeout=WAIT)
        admin = AdminClient({"bootstrap.servers": brokers[1].bootstrap})
        admin.create_topics([NewTopic("watched", 1, 2)])["watched"].result(WAIT)

        def leader() -> int | None:
            topic = metadata_of(brokers[1].bootstrap, "watched").topics.get("watched")
            if topic is None or topic.error is not None or not topic.partitions:
                return None
            partition = topic.partitions[0]
            return partition.leader if partition.leader > 0 and len(partition.isrs) == 2 \
                else None
        lead = wait_until(leader, WAIT, what="the topic's ISR to hold both brokers")
        follower = 2 if lead == 1 else 1
        wait_for(urls[lead], lambda r: r.value("strom_leader_partitions") >= 1
                 and r.value("strom_under_replicated_partitions") == 0, WAIT)

        brokers[follower].kill()
        wait_for(urls[lead], lambda r: r.value("strom_under_replicated_partitions") >= 1, WAIT)

        brokers[follower].start(timeout=WAIT)
        back = wait_for(urls[lead], lambda r: r.value("strom_under_replicated_partitions") == 0,
                        WAIT)
        assert back.value("strom_isr_expands_total") >= 1
        assert back.value("strom_offline_partitions") == 0
    finally:
        for broker in brokers.values():
            broker.stop()
