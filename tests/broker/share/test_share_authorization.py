"""ShareFetch and ShareAcknowledge need READ on each topic (Kafka 4.4): a
topic the member may not read answers TOPIC_AUTHORIZATION_FAILED per
partition, for fetches and for acknowledgements alike."""

from __future__ import annotations

from strom.errors import ErrorCode
from strom.security.acl_types import AclOperation, ResourceType
from tests.broker.share.share_client import ACCEPT, ShareClient, make_topic, partition_data
from tests.security.authz_broker import secured_broker, with_acls

G, T = ResourceType.GROUP, ResourceType.TOPIC


def test_topic_read_is_required() -> None:
    with secured_broker() as broker:
        with_acls(broker, [(ResourceType.CLUSTER, "kafka-cluster", AclOperation.CREATE)])
        topic_id = make_topic(broker, "secret")
        with_acls(broker, [(G, "g", AclOperation.READ)])
        client = ShareClient(broker, "g")
        fetched = client.fetch(topic_id, [0])
        assert fetched.error_code == 0
        assert partition_data(fetched).error_code == ErrorCode.topic_authorization_failed
        ack = client.acknowledge(topic_id, {0: [(0, 0, [ACCEPT])]})
        assert ack.responses[0].partitions[0].error_code == ErrorCode.topic_authorization_failed
        with_acls(broker, [(G, "g", AclOperation.READ), (T, "secret", AclOperation.READ)])
        assert partition_data(client.fetch(topic_id, [0])) is None \
            or partition_data(client.fetch(topic_id, [0])).error_code == 0
