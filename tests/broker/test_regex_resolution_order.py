"""KIP-848: a subscription of a literal topic plus a regex is assigned the
literal topic first and the regex's topics once the regex is resolved (after
the heartbeat that brought it), as Kafka resolves regexes asynchronously
(librdkafka's 0045 resubscribe_with_regex expects that order)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.testing import EmbeddedBroker
from tests.broker.admin_helpers import create
from tests.broker.raw_client import RawClient


def _ready(client: RawClient, group: str) -> None:
    deadline = time.monotonic() + 15
    while True:  # coordinators start on first use
        found = client.send(ApiKey.FIND_COORDINATOR, 4, {"key_type": 0,
                                                          "coordinator_keys": [group]})
        if found.coordinators[0].error_code == ErrorCode.none:
            return
        assert time.monotonic() < deadline, found
        time.sleep(0.05)


def _heartbeat(client: RawClient, group: str, member: str, epoch: int, owned: Any,
               names: list[str], regex: str) -> Any:
    response = client.send(ApiKey.CONSUMER_GROUP_HEARTBEAT, 1, {
        "group_id": group, "member_id": member, "member_epoch": epoch, "instance_id": None,
        "rack_id": None, "rebalance_timeout": 30000, "subscribed_topic_names": names,
        "subscribed_topic_regex": regex, "server_assignor": None,
        "topic_partitions": owned})
    assert response.error_code == ErrorCode.none, response
    return response


def test_literal_topic_first_then_regex_matches(broker: EmbeddedBroker) -> None:
    prefix = f"rx{time.monotonic_ns()}"
    for name in (f"{prefix}-literal", f"{prefix}-a", f"{prefix}-b"):
        create(broker, name)
    topics = broker.services.image.topics
    literal = topics[f"{prefix}-literal"].topic_id
    matched = {topics[f"{prefix}-a"].topic_id, topics[f"{prefix}-b"].topic_id}
    group, member = f"g-{prefix}", str(uuid.uuid4())
    with RawClient(broker.bootstrap) as client:
        _ready(client, group)
        first = _heartbeat(client, group, member, 0, [], [f"{prefix}-literal"],
                           f"{prefix}-[ab]")
        assert {t.topic_id for t in first.assignment.topic_partitions} == {literal}
        owned = [{"topic_id": literal, "partitions": [0]}]
        second = _heartbeat(client, group, member, first.member_epoch, owned,
                            [f"{prefix}-literal"], f"{prefix}-[ab]")
        assert second.member_epoch > first.member_epoch
        assert {t.topic_id for t in second.assignment.topic_partitions} == {literal, *matched}
