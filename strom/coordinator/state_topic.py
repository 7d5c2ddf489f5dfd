"""Where a coordinator's state lives: its internal topic (`__consumer_offsets`,
`__transaction_state`), created on first use as Kafka does, and which broker
leads a key's partition of it (FindCoordinator's answer)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from strom.cluster.image import MetadataImage
from strom.cluster.validation import MAX_REPLICATION_FACTOR
from strom.errors import CoordinatorNotAvailableError, KafkaError, KafkaStorageError

log = logging.getLogger(__name__)


#: Creates an internal topic: (name, partitions, replication factor, configs as
#: strings), on the controller, directly or asked of it (broker/controller_channel.py).
CreateTopic = Callable[[str, int, int, Mapping[str, str]], Awaitable[object]]


def state_topic_replication(topic: str, configured: int, registered: int,
                            cluster: bool) -> int:
    """The replication factor a coordinator's state topic is created with.
    A single node caps the configured factor (3 by default) at its one
    broker, as a Kafka user sets it to 1 there; a cluster refuses, as Kafka
    does, until enough brokers are registered (COORDINATOR_NOT_AVAILABLE, so
    clients retry): created any earlier, the topic would stay under-replicated
    for good once the other brokers join."""
    if cluster and registered < configured:
        raise CoordinatorNotAvailableError(
            f"{registered} broker(s) registered, fewer than the replication factor "
            f"{configured} of {topic}")
    return min(configured, max(registered, 1), MAX_REPLICATION_FACTOR)


async def coordinator_node(image: Callable[[], MetadataImage], topic: str,
                           create: Callable[[], Awaitable[None]],
                           partition_of: Callable[[int], int]) -> int | None:
    """The node leading a key's partition of an internal topic, creating the
    topic first when it is missing (as Kafka does on FindCoordinator); None
    while there is no leader or the topic cannot be created."""
    info = image().topics.get(topic)
    if info is None:
        try:
            await create()
        except KafkaStorageError as exc:  # logged once per condition (storage.disk)
            log.debug("cannot create %s: %s", topic, exc)
            return None
        except KafkaError as exc:
            log.warning("cannot create %s: %s", topic, exc)
            return None
        info = image().topics[topic]
    partition = info.partitions[partition_of(len(info.partitions))]
    return partition.leader if partition.leader >= 0 else None
