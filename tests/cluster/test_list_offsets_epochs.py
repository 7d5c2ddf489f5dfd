"""ListOffsets after a leader change: earliest, max-timestamp and timestamp
answers carry the leader epoch of the batch they found (Kafka's
batch.partitionLeaderEpoch), latest the current epoch; before, every answer
named the current epoch."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from tests.broker.raw_client import RawClient
from tests.cluster.brokers import WAIT, metadata_of, registered_brokers
from tests.cluster.etcd_process import EtcdCluster
from tests.interop.clients import wait_until

TOPIC = "epochs"


def _list(bootstrap: str, spec: int) -> tuple[int, int]:
    with RawClient(bootstrap, timeout=WAIT) as client:
        response = client.send(ApiKey.LIST_OFFSETS, 9, {
            "replica_id": -1, "isolation_level": 0, "topics": [{"name": TOPIC, "partitions": [
                {"partition_index": 0, "current_leader_epoch": -1, "timestamp": spec}]}]})
    (p,) = response.topics[0].partitions
    assert p.error_code == ErrorCode.none, p
    return p.offset, p.leader_epoch


def test_epochs_of_the_batches_found(tmp_path: Path, etcd: EtcdCluster) -> None:
    with registered_brokers(tmp_path, etcd) as started:
        by_id = {int(b.overrides["node.id"]): b for b in started}
        admin = AdminClient({"bootstrap.servers": started[0].bootstrap})
        admin.create_topics([NewTopic(TOPIC, 1, 2)])[TOPIC].result(WAIT)
        producer = Producer({"bootstrap.servers": started[0].bootstrap, "acks": "all"})
        producer.produce(TOPIC, b"first", timestamp=1_000)
        assert producer.flush(WAIT) == 0
        leader = metadata_of(started[0].bootstrap, TOPIC).topics[TOPIC].partitions[0].leader
        survivor = next(b for n, b in by_id.items() if n != leader)
        by_id[leader].stop()  # controlled shutdown: the other replica leads, epoch + 1

        def led_by_survivor() -> bool:
            meta = metadata_of(survivor.bootstrap, TOPIC).topics[TOPIC].partitions[0]
            return meta.leader == int(survivor.overrides["node.id"])
        wait_until(led_by_survivor, WAIT, what="the survivor leads")
        producer = Producer({"bootstrap.servers": survivor.bootstrap, "acks": "all"})
        producer.produce(TOPIC, b"second", timestamp=2_000)
        assert producer.flush(WAIT) == 0

        latest_offset, current = _list(survivor.bootstrap, -1)
        assert latest_offset == 2 and current >= 1
        assert _list(survivor.bootstrap, -2) == (0, 0)      # earliest: the first batch's
        assert _list(survivor.bootstrap, 1_000) == (0, 0)   # by timestamp
        assert _list(survivor.bootstrap, 1_500) == (1, current)
        assert _list(survivor.bootstrap, -3) == (1, current)  # max timestamp


