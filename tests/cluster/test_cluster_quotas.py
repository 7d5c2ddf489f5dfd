"""Client quotas in a cluster (real etcd, two `strom serve` processes): a
quota set through a broker that is not the controller is forwarded to it
(KIP-590), every broker's image shows it, and each broker enforces it on the
partitions it leads."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic
from kio.schema.alter_client_quotas.v1 import request as alter
from kio.schema.describe_client_quotas.v1 import request as describe

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.protocol.records import RecordSpec, build_batch
from tests.cluster.brokers import WAIT, controller_and_other, metadata_of, registered_brokers
from tests.cluster.etcd_process import EtcdCluster
from tests.interop.clients import wait_until
from tests.wire import WireClient, produce_request


def _quotas(bootstrap: str) -> dict[tuple[tuple[str, str | None], ...], dict[str, float]]:
    with WireClient(bootstrap) as client:
        response = client.request(ApiKey.DESCRIBE_CLIENT_QUOTAS, 1,
                                  describe.DescribeClientQuotasRequest(components=(),
                                                                       strict=False))
    assert response.error_code == ErrorCode.none
    return {tuple((e.entity_type, e.entity_name) for e in entry.entity):
            {v.key: v.value for v in entry.values} for entry in response.entries}


def test_quota_set_on_one_broker_holds_on_both(etcd: EtcdCluster, tmp_path: Path) -> None:
    with registered_brokers(tmp_path, etcd) as started:
        controller, other = controller_and_other(started)
        with WireClient(other.bootstrap) as client:
            response = client.request(ApiKey.ALTER_CLIENT_QUOTAS, 1,
                                      alter.AlterClientQuotasRequest(entries=(
                                          alter.EntryData(
                                              entity=(alter.EntityData(
                                                  entity_type="client-id",
                                                  entity_name="strom-tests"),),
                                              ops=(alter.OpData(key="producer_byte_rate",
                                                                value=10_000.0,
                                                                remove=False),)),),
                                          validate_only=False))
        assert [e.error_code for e in response.entries] == [ErrorCode.none]
        wanted = {(("client-id", "strom-tests"),): {"producer_byte_rate": 10_000.0}}
        # Answered once the forwarding broker's own image has it; the controller's too.
        assert _quotas(other.bootstrap) == wanted
        wait_until(lambda: _quotas(controller.bootstrap) == wanted, WAIT,
                   what="the controller to show the quota")

        admin = AdminClient({"bootstrap.servers": controller.bootstrap})
        admin.create_topics([NewTopic("quoted", 2, 1)])["quoted"].result(WAIT)
        partitions = wait_until(
            lambda: (metadata_of(other.bootstrap, "quoted").topics.get("quoted") or None),
            WAIT, what="the topic on both brokers").partitions
        by_node = {int(b.overrides["node.id"]): b for b in started}
        batch = build_batch([RecordSpec(value=b"q" * 150_000)])
        for index, partition in sorted(partitions.items()):
            leader = by_node[partition.leader]
            with WireClient(leader.bootstrap) as client:
                produced = client.request(ApiKey.PRODUCE, 9, produce_request(
                    "quoted", batch, partition=index))
            result = produced.responses[0].partition_responses[0]
            assert result.error_code == ErrorCode.none
            # 150 kB against 10 kB/s over the 10 s minimum span: (15 - 10) / 10 * 10 s.
            throttle_ms = produced.throttle_time.total_seconds() * 1000
            assert 4000 <= throttle_ms <= 6000, (partition.leader, throttle_ms)
        assert {partitions[0].leader, partitions[1].leader} == {1, 2}
