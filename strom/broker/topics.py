"""Topic creation shared by CreateTopics and Metadata's auto-creation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from strom.broker.context import BrokerServices
from strom.cluster.image import MetadataRecord, PartitionRecord, TopicInfo
from strom.cluster.validation import check_records_per_user_op
from strom.config import parse_topic_configs


def topic_records(broker: BrokerServices, name: str, num_partitions: int = -1,
                  replication_factor: int = -1,
                  configs: Mapping[str, str | None] | None = None,
                  assignments: Mapping[int, Sequence[int]] | None = None,
                  pending: dict[str, str] | None = None) -> list[MetadataRecord]:
    """Validate a new topic and return the records that create it; changes
    nothing. Raises typed KafkaErrors. `pending`: see create_topic_records.

    -1 partitions or replication factor means the broker's default, as in Kafka.
    """
    if num_partitions == -1:
        value = broker.config.get("num.partitions")
        assert isinstance(value, int)
        num_partitions = value
    if replication_factor == -1:
        value = broker.config.get("default.replication.factor")
        assert isinstance(value, int)
        replication_factor = value
    parsed = parse_topic_configs(configs or {})
    return broker.metadata.operations.create_topic_records(
        name, num_partitions, replication_factor, parsed, assignments, pending
    )


async def create_topic(broker: BrokerServices, name: str, num_partitions: int = -1,
                 replication_factor: int = -1, configs: Mapping[str, str | None] | None = None,
                 assignments: Mapping[int, Sequence[int]] | None = None,
                 validate_only: bool = False) -> TopicInfo:
    """Create one topic (or only validate it) in one metadata operation. On a
    broker that is not the controller the request is validated here, then
    forwarded to the controller (Kafka's AutoTopicCreationManager) with this
    broker's defaults, and answered once this broker's image has the topic."""
    records = topic_records(broker, name, num_partitions, replication_factor, configs,
                            assignments)
    check_records_per_user_op(len(records))
    if validate_only:
        image = broker.image.apply(records)
    elif broker.controller.is_local or assignments:
        image = await broker.metadata.commit(records)
    else:
        partitions = len({r.partition for r in records if isinstance(r, PartitionRecord)})
        replication = broker.image.apply(records).topics[name].replication_factor
        image = await broker.controller.create_topic(
            name, partitions, replication,
            {k: v for k, v in (configs or {}).items() if v is not None})
    return image.topics[name]
