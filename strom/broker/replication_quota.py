"""Replication throttles (Kafka's ReplicationQuotaManager), used while
replicas move (kafka-reassign-partitions.sh --throttle).

Two bounds, each a broker's dynamic config in bytes per second (default
Long.MAX_VALUE: no bound, and then nothing below is even looked at, so
unthrottled replication pays one comparison per fetch):
- `leader.replication.throttled.rate`: what a leader sends to followers that
  are out of the ISR, for the partitions whose topic lists this broker's
  replica in `leader.replication.throttled.replicas` ("partition:broker",
  or "*" for all);
- `follower.replication.throttled.rate`: what a follower out of the ISR
  fetches for the partitions whose topic lists its replica in
  `follower.replication.throttled.replicas`.
In-sync replicas are never throttled, as in Kafka: producers' acks=all and
the high watermark never wait for a throttle. A throttled partition whose
bound is spent is left out of the fetch (the follower's) or answered
without records (the leader's); the bytes of throttled partitions are
counted against the bound.

The bound is a token bucket refilled at the rate, holding at most one
second of it (Kafka measures the rate over 1 s windows): one fetch may
overdraw it (a whole batch is the unit), the next waits until it is paid
back, so the rate holds on average.
"""

from __future__ import annotations

from strom.clock import Clock
from strom.config import LONG_MAX, BrokerConfig, TopicConfig

LEADER_RATE = "leader.replication.throttled.rate"
FOLLOWER_RATE = "follower.replication.throttled.rate"
LEADER_REPLICAS = "leader.replication.throttled.replicas"
FOLLOWER_REPLICAS = "follower.replication.throttled.replicas"


class ReplicationQuota:
    """A bound in bytes per second on replication traffic, as a token bucket."""

    def __init__(self, clock: Clock, rate: int = LONG_MAX) -> None:
        self._clock = clock
        self.rate = rate
        self._tokens = float(rate)
        self._at = clock.monotonic()

    @property
    def limited(self) -> bool:
        return self.rate < LONG_MAX

    def set_rate(self, rate: int) -> None:
        if rate != self.rate:
            self.rate = rate
            self._tokens = min(self._tokens, float(rate)) if self.limited else float(rate)

    def _refill(self) -> None:
        now = self._clock.monotonic()
        self._tokens = min(float(self.rate), self._tokens + (now - self._at) * self.rate)
        self._at = now

    def exceeded(self) -> bool:
        """True while the bytes counted so far are over the bound."""
        if not self.limited:
            return False
        self._refill()
        return self._tokens < 0

    def record(self, size: int) -> None:
        if self.limited and size:
            self._refill()
            self._tokens -= size

    def delay(self) -> float:
        """Seconds until the bound allows traffic again (0: now)."""
        if not self.limited:
            return 0.0
        self._refill()
        return 0.0 if self._tokens >= 0 else -self._tokens / max(self.rate, 1)


def throttled(config: TopicConfig, name: str, partition: int, node_id: int) -> bool:
    """Whether `name` (one of the *.throttled.replicas topic configs) lists
    this broker's replica of `partition`."""
    value = config.get(name)
    if not value or not isinstance(value, list):
        return False
    return "*" in value or f"{partition}:{node_id}" in value


class ReplicationQuotas:
    """This broker's leader and follower bounds, following its dynamic configs."""

    def __init__(self, config: BrokerConfig, clock: Clock) -> None:
        self.leader = ReplicationQuota(clock)
        self.follower = ReplicationQuota(clock)
        self.update(config)

    def update(self, config: BrokerConfig) -> None:
        for quota, name in ((self.leader, LEADER_RATE), (self.follower, FOLLOWER_RATE)):
            rate = config.get(name)
            quota.set_rate(rate if isinstance(rate, int) and rate >= 0 else LONG_MAX)
