"""Broker configs Kafka does not update dynamically, beyond those strom's
definitions mark read-only (config_defs.ConfigDef.read_only).

Kafka answers DescribeConfigs for a broker with read_only true for every
config outside DynamicBrokerConfig.ALL_DYNAMIC_CONFIGS, and AlterConfigs /
IncrementalAlterConfigs on one with INVALID_REQUEST "Cannot update these
configs dynamically". These are the names strom defines that are absent from
Kafka 4.4's list (read from kafka-server-4.4.0.jar): the topic defaults'
secondary synonyms (log.retention.hours: only log.retention.ms is dynamic),
topic creation defaults, and the group, offset and transaction coordinator
settings. strom's own settings (strom.*) are not Kafka's to decide.
"""

from __future__ import annotations

from strom.config_defs import BROKER_CONFIGS

STATIC_IN_KAFKA = frozenset({
    "num.partitions", "default.replication.factor", "auto.create.topics.enable",
    "delete.topic.enable",
    "log.roll.hours", "log.roll.jitter.hours", "log.retention.minutes", "log.retention.hours",
    "log.retention.check.interval.ms", "log.flush.scheduler.interval.ms",
    "log.flush.offset.checkpoint.interval.ms", "log.flush.start.offset.checkpoint.interval.ms",
    "offsets.load.buffer.size", "offsets.retention.minutes",
    "offsets.retention.check.interval.ms", "offsets.commit.timeout.ms",
    "offset.metadata.max.bytes",
    "group.initial.rebalance.delay.ms", "group.min.session.timeout.ms",
    "group.max.session.timeout.ms", "group.max.size",
    "group.consumer.session.timeout.ms", "group.consumer.min.session.timeout.ms",
    "group.consumer.max.session.timeout.ms", "group.consumer.heartbeat.interval.ms",
    "group.consumer.min.heartbeat.interval.ms", "group.consumer.max.heartbeat.interval.ms",
    "group.consumer.max.size", "group.consumer.migration.policy", "group.consumer.assignors",
    "group.share.session.timeout.ms", "group.share.min.session.timeout.ms",
    "group.share.max.session.timeout.ms", "group.share.heartbeat.interval.ms",
    "group.share.min.heartbeat.interval.ms", "group.share.max.heartbeat.interval.ms",
    "group.share.max.size", "group.share.initialize.retry.interval.ms",
    "transaction.max.timeout.ms", "transaction.abort.timed.out.transaction.cleanup.interval.ms",
    "transactional.id.expiration.ms",
})


def read_only(name: str) -> bool:
    """Whether a known broker config cannot be updated dynamically."""
    definition = BROKER_CONFIGS.get(name)
    return definition is not None and (definition.read_only or name in STATIC_IN_KAFKA)
