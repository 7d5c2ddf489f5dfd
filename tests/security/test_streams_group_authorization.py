"""Streams groups under Kafka's authorizer: internal topics are created only with
CREATE on the cluster or on every one of them; otherwise none is, and the member's
MISSING_INTERNAL_TOPICS status says which it may not create (as KafkaApis does)."""

from __future__ import annotations

from typing import Any

from strom.protocol.api import ApiKey
from strom.security.acl_types import CLUSTER_NAME, AclOperation, ResourceType
from tests.broker.raw_client import RawClient
from tests.security.authz_broker import secured_broker, with_acls

G, T, C = ResourceType.GROUP, ResourceType.TOPIC, ResourceType.CLUSTER
MISSING_INTERNAL_TOPICS = 3


def _join(member: str) -> dict[str, Any]:
    topic = {"name": "app-store-changelog", "partitions": 0, "replication_factor": 0,
             "topic_configs": []}
    return {"group_id": "app", "member_id": member, "member_epoch": 0,
            "endpoint_information_epoch": 0, "rebalance_timeout": 5000,
            "topology": {"epoch": 1, "subtopologies": [{
                "subtopology_id": "0", "source_topics": ["lines"], "source_topic_regex": [],
                "state_changelog_topics": [topic], "repartition_sink_topics": [],
                "repartition_source_topics": [], "copartition_groups": []}]},
            "active_tasks": None, "standby_tasks": None, "warmup_tasks": None,
            "process_id": "p", "user_endpoint": None, "client_tags": [],
            "task_offsets": None, "task_end_offsets": None, "shutdown_application": False}


def test_internal_topics_need_create() -> None:
    with secured_broker({"offsets.topic.num.partitions": "1",
                         "group.streams.initial.rebalance.delay.ms": "0"}) as broker:
        broker.run(broker.services.groups.coordinator_for("app"))  # __consumer_offsets
        broker.run(broker.services.groups.runtime.wait_loaded())
        with_acls(broker, [(C, CLUSTER_NAME, AclOperation.CREATE)])
        with RawClient(broker.bootstrap) as client:
            made = client.send(ApiKey.CREATE_TOPICS, 5, {"topics": [
                {"name": "lines", "num_partitions": 2, "replication_factor": 1,
                 "assignments": [], "configs": []}], "timeout": 5000})
            assert made.topics[0].error_code == 0
        base = [(G, "app", AclOperation.READ), (T, "lines", AclOperation.DESCRIBE),
                (T, "app-store-changelog", AclOperation.DESCRIBE)]
        with_acls(broker, base)
        with RawClient(broker.bootstrap) as client:
            refused = client.send(ApiKey.STREAMS_GROUP_HEARTBEAT, 0, _join("m1"))
        assert refused.error_code == 0
        assert [(s.status_code, s.status_detail) for s in refused.status] == [(
            MISSING_INTERNAL_TOPICS, "Internal topics are missing: [app-store-changelog]; "
            "Unauthorized to CREATE on topics app-store-changelog.")]
        assert "app-store-changelog" not in broker.services.metadata.image.topics

        with_acls(broker, [*base, (T, "app-store-changelog", AclOperation.CREATE)])
        with RawClient(broker.bootstrap) as client:
            allowed = client.send(ApiKey.STREAMS_GROUP_HEARTBEAT, 0, _join("m2"))
        assert [s.status_code for s in allowed.status] == [MISSING_INTERNAL_TOPICS]
        assert "Unauthorized" not in allowed.status[0].status_detail
        assert len(broker.services.metadata.image.topics["app-store-changelog"].partitions) == 2
