"""Replication throttles, sans I/O (broker/replication_quota.py): the token
bucket bounds bytes per second on average, the topic lists name replicas as
Kafka's do, and an unset rate bounds nothing."""

from __future__ import annotations

import pytest

from strom.broker.replication_quota import (
    FOLLOWER_REPLICAS,
    LEADER_REPLICAS,
    ReplicationQuota,
    ReplicationQuotas,
    throttled,
)
from strom.clock import ManualClock
from strom.config import LONG_MAX, TOPIC_CONFIGS, BrokerConfig, TopicConfig
from strom.errors import InvalidConfigError


def test_the_bucket_holds_the_rate_on_average() -> None:
    clock = ManualClock()
    quota = ReplicationQuota(clock, 1000)
    assert quota.limited and not quota.exceeded()
    quota.record(3000)  # one fetch may overdraw the bucket...
    assert quota.exceeded() and quota.delay() == pytest.approx(2.0)
    clock.advance(1500)
    assert quota.exceeded()  # ...and the next waits until it is paid back
    clock.advance(600)
    assert not quota.exceeded()
    clock.advance(100_000)  # idle time saves at most one second of the rate
    quota.record(1500)
    assert quota.exceeded()


def test_no_rate_bounds_nothing() -> None:
    quota = ReplicationQuota(ManualClock())
    quota.record(10**12)
    assert not quota.limited and not quota.exceeded() and quota.delay() == 0


def test_rates_follow_the_broker_configs() -> None:
    config = BrokerConfig()
    quotas = ReplicationQuotas(config, ManualClock())
    assert quotas.leader.rate == quotas.follower.rate == LONG_MAX
    config.dynamic_broker["leader.replication.throttled.rate"] = 500
    quotas.update(config)
    assert quotas.leader.rate == 500 and quotas.follower.rate == LONG_MAX


def test_throttled_replica_lists() -> None:
    broker = BrokerConfig()
    topic = TopicConfig({LEADER_REPLICAS: ["0:1", "1:2"], FOLLOWER_REPLICAS: ["*"]}, broker)
    assert throttled(topic, LEADER_REPLICAS, 0, 1)
    assert not throttled(topic, LEADER_REPLICAS, 0, 2)
    assert throttled(topic, FOLLOWER_REPLICAS, 7, 3)
    assert not throttled(TopicConfig({}, broker), LEADER_REPLICAS, 0, 1)
    parse = TOPIC_CONFIGS[LEADER_REPLICAS].definition.parse
    assert parse("0:1, 1:2") == ["0:1", "1:2"] and parse("*") == ["*"]
    with pytest.raises(InvalidConfigError):
        parse("0-1")
