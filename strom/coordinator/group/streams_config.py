"""The broker's settings for streams groups (KIP-1071), with Kafka 4.4's names and defaults.

group.streams.session.timeout.ms (45000, within group.streams.min/max.session.timeout.ms
45000/60000), group.streams.heartbeat.interval.ms (5000, within 5000/15000),
group.streams.max.size (2147483647), group.streams.num.standby.replicas (0, at most
group.streams.max.standby.replicas 2), group.streams.acceptable.recovery.lag (10000)
and group.streams.task.offset.interval.ms (60000, at least
group.streams.min.task.offset.interval.ms 15000), the last two handed to the clients
in every heartbeat, and group.streams.initial.rebalance.delay.ms (3000): how long
the first assignment of a group that was empty waits for more members. A group's own
streams.session.timeout.ms, streams.heartbeat.interval.ms, streams.num.standby.replicas
and streams.initial.rebalance.delay.ms (GROUP configs) win, the first three capped to
the broker's range as Kafka caps them. group.streams.rack.aware.assignment.tags
(empty): client tag keys over whose values standby tasks are spread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SESSION_TIMEOUT = "streams.session.timeout.ms"
HEARTBEAT_INTERVAL = "streams.heartbeat.interval.ms"
NUM_STANDBY_REPLICAS = "streams.num.standby.replicas"
INITIAL_REBALANCE_DELAY = "streams.initial.rebalance.delay.ms"
TASK_OFFSET_INTERVAL = "streams.task.offset.interval.ms"


@dataclass(frozen=True, slots=True)
class StreamsGroupConfig:
    session_timeout_ms: int = 45_000
    min_session_timeout_ms: int = 45_000
    max_session_timeout_ms: int = 60_000
    heartbeat_interval_ms: int = 5000
    min_heartbeat_interval_ms: int = 5000
    max_heartbeat_interval_ms: int = 15_000
    max_size: int = 2**31 - 1
    num_standby_replicas: int = 0
    max_standby_replicas: int = 2
    acceptable_recovery_lag: int = 10_000
    task_offset_interval_ms: int = 60_000
    initial_rebalance_delay_ms: int = 3000
    rack_aware_assignment_tags: tuple[str, ...] = ()

    def session_timeout_ms_for(self, group_configs: Mapping[str, object]) -> int:
        return _capped(group_configs.get(SESSION_TIMEOUT), self.session_timeout_ms,
                       self.min_session_timeout_ms, self.max_session_timeout_ms)

    def heartbeat_interval_ms_for(self, group_configs: Mapping[str, object]) -> int:
        return _capped(group_configs.get(HEARTBEAT_INTERVAL), self.heartbeat_interval_ms,
                       self.min_heartbeat_interval_ms, self.max_heartbeat_interval_ms)

    def num_standby_replicas_for(self, group_configs: Mapping[str, object]) -> int:
        return _capped(group_configs.get(NUM_STANDBY_REPLICAS),
                       min(self.num_standby_replicas, self.max_standby_replicas),
                       0, self.max_standby_replicas)

    def task_offset_interval_ms_for(self, group_configs: Mapping[str, object]) -> int:
        own = group_configs.get(TASK_OFFSET_INTERVAL)
        return own if isinstance(own, int) and not isinstance(own, bool) \
            else self.task_offset_interval_ms

    def initial_rebalance_delay_ms_for(self, group_configs: Mapping[str, object]) -> int:
        own = group_configs.get(INITIAL_REBALANCE_DELAY)
        return own if isinstance(own, int) and not isinstance(own, bool) \
            else self.initial_rebalance_delay_ms

    @classmethod
    def from_broker(cls, get: Any) -> StreamsGroupConfig:
        """From the broker's settings; `get` looks one up by its Kafka name."""
        return cls(
            session_timeout_ms=get("group.streams.session.timeout.ms"),
            min_session_timeout_ms=get("group.streams.min.session.timeout.ms"),
            max_session_timeout_ms=get("group.streams.max.session.timeout.ms"),
            heartbeat_interval_ms=get("group.streams.heartbeat.interval.ms"),
            min_heartbeat_interval_ms=get("group.streams.min.heartbeat.interval.ms"),
            max_heartbeat_interval_ms=get("group.streams.max.heartbeat.interval.ms"),
            max_size=get("group.streams.max.size"),
            num_standby_replicas=get("group.streams.num.standby.replicas"),
            max_standby_replicas=get("group.streams.max.standby.replicas"),
            acceptable_recovery_lag=get("group.streams.acceptable.recovery.lag"),
            task_offset_interval_ms=max(get("group.streams.task.offset.interval.ms"),
                                        get("group.streams.min.task.offset.interval.ms")),
            initial_rebalance_delay_ms=get("group.streams.initial.rebalance.delay.ms"),
            rack_aware_assignment_tags=tuple(
                get("group.streams.rack.aware.assignment.tags") or ()),
        )


def _capped(own: object, default: int, low: int, high: int) -> int:
    if not isinstance(own, int) or isinstance(own, bool):
        return default
    return min(max(own, low), high)
