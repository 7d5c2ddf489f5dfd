"""The share coordinator (KIP-932): share-partition state in `__share_group_state`."""

from __future__ import annotations

import base64
import binascii
import uuid

#: The share coordinator's state topic (Kafka's Topic.SHARE_GROUP_STATE_TOPIC_NAME).
SHARE_GROUP_STATE_TOPIC = "__share_group_state"


def coordinator_key(group_id: str, topic_id: uuid.UUID, partition: int) -> str:
    """Kafka's SharePartitionKey.asCoordinatorKey: the topic id in Kafka's
    Uuid.toString form (URL-safe base64, no padding)."""
    topic = base64.urlsafe_b64encode(topic_id.bytes).rstrip(b"=").decode("ascii")
    return f"{group_id}:{topic}:{partition}"


def parse_coordinator_key(key: str) -> tuple[str, uuid.UUID, int] | None:
    """(group id, topic id, partition) of a coordinator key, or None when it is
    not one (Kafka's SharePartitionKey.validate)."""
    parts = key.rsplit(":", 2)
    if len(parts) != 3 or not parts[0]:
        return None
    group_id, topic, partition = parts
    try:
        raw = base64.urlsafe_b64decode(topic + "=" * (-len(topic) % 4))
        index = int(partition)
    except (ValueError, binascii.Error):
        return None
    if len(raw) != 16 or index < 0:
        return None
    return group_id, uuid.UUID(bytes=raw), index
