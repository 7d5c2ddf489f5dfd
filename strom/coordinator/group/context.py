"""What every part of a group coordinator shard shares: configs, time, timers, groups."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from strom.clock import Clock
from strom.cluster.image import MetadataImage
from strom.config import BrokerConfig
from strom.coordinator.group.streams_config import StreamsGroupConfig
from strom.coordinator.runtime import Timer

if TYPE_CHECKING:
    from strom.coordinator.group.classic import ClassicGroup
    from strom.coordinator.group.consumer import ConsumerGroup
    from strom.coordinator.group.share_group import ShareGroup
    from strom.coordinator.group.streams import StreamsGroup

# Kafka's classicGroupNewMemberJoinTimeoutMs: a new member parked in JoinGroup
# cannot heartbeat, so it gets this long to complete its join.
NEW_MEMBER_JOIN_TIMEOUT_MS = 5 * 60 * 1000

ASSIGNOR_ALIASES = {
    "org.apache.kafka.coordinator.group.assignor.UniformAssignor": "uniform",
    "org.apache.kafka.coordinator.group.assignor.RangeAssignor": "range",
}


@dataclass(frozen=True, slots=True)
class GroupConfig:
    offsets_topic_partitions: int = 50
    offsets_retention_ms: int = 7 * 24 * 3600 * 1000
    offsets_retention_check_interval_ms: int = 600_000
    offset_metadata_max_bytes: int = 4096
    initial_rebalance_delay_ms: int = 3000
    min_session_timeout_ms: int = 6000
    max_session_timeout_ms: int = 1_800_000
    max_size: int = 2**31 - 1
    new_member_join_timeout_ms: int = NEW_MEMBER_JOIN_TIMEOUT_MS
    rebalance_protocols: tuple[str, ...] = ("classic", "consumer")
    consumer_session_timeout_ms: int = 45_000
    consumer_min_session_timeout_ms: int = 45_000
    consumer_max_session_timeout_ms: int = 60_000
    consumer_heartbeat_interval_ms: int = 5000
    consumer_min_heartbeat_interval_ms: int = 5000
    consumer_max_heartbeat_interval_ms: int = 15_000
    consumer_max_size: int = 2**31 - 1
    consumer_assignors: tuple[str, ...] = ("uniform", "range")
    # group.consumer.migration.policy: bidirectional, upgrade, downgrade or disabled.
    migration_policy: str = "bidirectional"
    streams: StreamsGroupConfig = StreamsGroupConfig()
    # Share groups (KIP-932): group.share.*.
    share_session_timeout_ms: int = 45_000
    share_min_session_timeout_ms: int = 45_000
    share_max_session_timeout_ms: int = 60_000
    share_heartbeat_interval_ms_default: int = 5000
    share_min_heartbeat_interval_ms: int = 5000
    share_max_heartbeat_interval_ms: int = 15_000
    share_max_size: int = 200
    share_initialize_retry_interval_ms: int = 30_000

    def session_timeout_ms(self, group_configs: Mapping[str, object]) -> int:
        """A consumer group's session timeout: its consumer.session.timeout.ms
        (a GROUP config, KIP-848) capped to the broker's range as Kafka 4.4
        caps it, else group.consumer.session.timeout.ms."""
        return _capped(group_configs.get("consumer.session.timeout.ms"),
                       self.consumer_session_timeout_ms,
                       self.consumer_min_session_timeout_ms, self.consumer_max_session_timeout_ms)

    def heartbeat_interval_ms(self, group_configs: Mapping[str, object]) -> int:
        """Likewise consumer.heartbeat.interval.ms."""
        return _capped(group_configs.get("consumer.heartbeat.interval.ms"),
                       self.consumer_heartbeat_interval_ms,
                       self.consumer_min_heartbeat_interval_ms,
                       self.consumer_max_heartbeat_interval_ms)

    def share_session_timeout(self, group_configs: Mapping[str, object]) -> int:
        """A share group's session timeout: its share.session.timeout.ms capped to
        group.share.min/max.session.timeout.ms, else group.share.session.timeout.ms."""
        return _capped(group_configs.get("share.session.timeout.ms"),
                       self.share_session_timeout_ms, self.share_min_session_timeout_ms,
                       self.share_max_session_timeout_ms)

    def share_heartbeat_interval_ms(self, group_configs: Mapping[str, object]) -> int:
        """Likewise share.heartbeat.interval.ms."""
        return _capped(group_configs.get("share.heartbeat.interval.ms"),
                       self.share_heartbeat_interval_ms_default,
                       self.share_min_heartbeat_interval_ms,
                       self.share_max_heartbeat_interval_ms)

    @property
    def upgrade_enabled(self) -> bool:
        return self.migration_policy in ("bidirectional", "upgrade")

    @property
    def downgrade_enabled(self) -> bool:
        return self.migration_policy in ("bidirectional", "downgrade")

    @classmethod
    def from_broker(cls, config: BrokerConfig) -> GroupConfig:
        def get(name: str) -> Any:
            return config.get(name)

        assignors = tuple(ASSIGNOR_ALIASES.get(a, a)
                          for a in (get("group.consumer.assignors") or ["uniform"]))
        return cls(
            offsets_topic_partitions=get("offsets.topic.num.partitions"),
            offsets_retention_ms=get("offsets.retention.minutes") * 60_000,
            offsets_retention_check_interval_ms=get("offsets.retention.check.interval.ms"),
            offset_metadata_max_bytes=get("offset.metadata.max.bytes"),
            initial_rebalance_delay_ms=get("group.initial.rebalance.delay.ms"),
            min_session_timeout_ms=get("group.min.session.timeout.ms"),
            max_session_timeout_ms=get("group.max.session.timeout.ms"),
            max_size=get("group.max.size"),
            rebalance_protocols=tuple(get("group.coordinator.rebalance.protocols")),
            consumer_session_timeout_ms=get("group.consumer.session.timeout.ms"),
            consumer_min_session_timeout_ms=get("group.consumer.min.session.timeout.ms"),
            consumer_max_session_timeout_ms=get("group.consumer.max.session.timeout.ms"),
            consumer_heartbeat_interval_ms=get("group.consumer.heartbeat.interval.ms"),
            consumer_min_heartbeat_interval_ms=get("group.consumer.min.heartbeat.interval.ms"),
            consumer_max_heartbeat_interval_ms=get("group.consumer.max.heartbeat.interval.ms"),
            consumer_max_size=get("group.consumer.max.size"),
            consumer_assignors=assignors,
            migration_policy=str(get("group.consumer.migration.policy")).lower(),
            streams=StreamsGroupConfig.from_broker(get),
            share_session_timeout_ms=get("group.share.session.timeout.ms"),
            share_min_session_timeout_ms=get("group.share.min.session.timeout.ms"),
            share_max_session_timeout_ms=get("group.share.max.session.timeout.ms"),
            share_heartbeat_interval_ms_default=get("group.share.heartbeat.interval.ms"),
            share_min_heartbeat_interval_ms=get("group.share.min.heartbeat.interval.ms"),
            share_max_heartbeat_interval_ms=get("group.share.max.heartbeat.interval.ms"),
            share_max_size=get("group.share.max.size"),
            # Kafka: below offsets.commit.timeout.ms, that is used instead.
            share_initialize_retry_interval_ms=max(
                get("group.share.initialize.retry.interval.ms"),
                get("offsets.commit.timeout.ms")),
        )


def _capped(own: object, default: int, low: int, high: int) -> int:
    if not isinstance(own, int) or isinstance(own, bool):
        return default
    return min(max(own, low), high)


@dataclass(eq=False)
class ShardContext:
    """The state of one `__consumer_offsets` partition that its managers share."""

    partition: int
    config: GroupConfig
    clock: Clock
    timer: Timer
    image: Callable[[], MetadataImage]
    groups: dict[str, ClassicGroup | ConsumerGroup | ShareGroup | StreamsGroup] = field(
        default_factory=dict)

    def now_ms(self) -> int:
        return self.clock.wall_ms()
