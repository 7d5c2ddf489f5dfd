"""ShareGroupDescribe needs DESCRIBE on the group and, as Kafka 4.x checks for the
modern groups, on every topic of its members' assignments: a group assigned a topic the
caller may not describe answers TOPIC_AUTHORIZATION_FAILED; with it, the group."""

from __future__ import annotations

import time
import uuid
from typing import Any

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation, ResourceType
from tests.broker.raw_client import RawClient
from tests.broker.share.share_client import make_topic
from tests.security.authz_broker import secured_broker, with_acls

G, T = ResourceType.GROUP, ResourceType.TOPIC


def test_assigned_topics_must_be_describable() -> None:
    with secured_broker() as broker, RawClient(broker.bootstrap) as client:
        with_acls(broker, [(ResourceType.CLUSTER, "kafka-cluster", AclOperation.CREATE)])
        make_topic(broker, "hidden")
        with_acls(broker, [(G, "sg", AclOperation.READ), (T, "hidden", AclOperation.DESCRIBE)])
        member = str(uuid.uuid4())
        deadline = time.monotonic() + 15
        epoch, assigned = 0, False
        while not assigned:  # the coordinator starts on first use; then the state initializes
            client.send(ApiKey.FIND_COORDINATOR, 4, {"key_type": 0, "coordinator_keys": ["sg"]})
            beat = client.send(ApiKey.SHARE_GROUP_HEARTBEAT, 1, {
                "group_id": "sg", "member_id": member, "member_epoch": epoch, "rack_id": None,
                "subscribed_topic_names": ["hidden"] if epoch == 0 else None})
            if beat.error_code == ErrorCode.none:
                epoch = beat.member_epoch
                assigned = bool(beat.assignment and beat.assignment.topic_partitions)
            assert time.monotonic() < deadline, beat
            time.sleep(0.05)

        def describe() -> Any:
            return client.send(ApiKey.SHARE_GROUP_DESCRIBE, 1, {
                "group_ids": ["sg"], "include_authorized_operations": False}).groups[0]

        with_acls(broker, [(G, "sg", AclOperation.DESCRIBE)])
        denied = describe()
        assert denied.error_code == ErrorCode.topic_authorization_failed
        with_acls(broker, [(G, "sg", AclOperation.DESCRIBE), (T, "hidden", AclOperation.DESCRIBE)])
        allowed = describe()
        assert allowed.error_code == ErrorCode.none
        assert allowed.members[0].member_id == member
