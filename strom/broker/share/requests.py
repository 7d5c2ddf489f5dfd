"""What ShareFetch and ShareAcknowledge share: finding a share partition for
a request's (topic id, partition), applying its acknowledgements, and the
leader hints an error carries (current_leader, node_endpoints).

Per partition, as Kafka answers: an unknown topic id UNKNOWN_TOPIC_ID, a topic
the principal may not READ TOPIC_AUTHORIZATION_FAILED, a partition this broker
does not lead NOT_LEADER_OR_FOLLOWER (with the current leader and its
endpoint), bad acknowledgement ranges or types INVALID_REQUEST, records not
acquired by the member INVALID_RECORD_STATE, and the Persister's errors as it
raised them.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from strom.broker.partition import Partition
from strom.errors import (
    ErrorCode,
    KafkaError,
    NotLeaderOrFollowerError,
    TopicAuthorizationFailedError,
    UnknownTopicIdError,
)
from strom.security.acl_types import AclOperation, ResourceType

if TYPE_CHECKING:
    from strom.broker.context import RequestContext
    from strom.broker.group_configs import ShareGroupSettings
    from strom.broker.share.manager import SharePartitionHandle


def valid_member_id(member_id: str | None) -> bool:
    """A share member id is a Kafka Uuid in its base64 form: 22 characters, or 24 with
    the padding (Kafka's Uuid.fromString accepts both; franz-go sends the padded form)."""
    if not member_id or len(member_id) not in (22, 24):
        return False
    try:
        return len(base64.urlsafe_b64decode(member_id.rstrip("=") + "==")) == 16
    except (binascii.Error, ValueError):
        return False


def error_response(code: ErrorCode, message: str | None = None) -> dict[str, Any]:
    """A ShareFetch or ShareAcknowledge response failing as a whole."""
    return {"throttle_time": 0, "error_code": code, "error_message": message,
            "acquisition_lock_timeout": 0, "responses": [], "node_endpoints": []}


def refused(ctx: RequestContext, group_id: str, member_id: str) -> dict[str, Any] | None:
    """The response of a ShareFetch or ShareAcknowledge refused as a whole before its
    session is looked at: READ on the group, then a well-formed member id."""
    if not ctx.authorize(AclOperation.READ, ResourceType.GROUP, group_id):
        return error_response(ErrorCode.group_authorization_failed)
    if not valid_member_id(member_id):
        return error_response(ErrorCode.invalid_request, "Invalid member id in the request.")
    return None


@dataclass(slots=True)
class Leaders:
    """The leader hints of an answer: per partition, and the brokers named."""

    ctx: RequestContext
    endpoints: dict[int, dict[str, Any]] = field(default_factory=dict)

    def current_leader(self, topic_id: uuid.UUID | None, index: int,
                       error: KafkaError | None) -> dict[str, int]:
        if not isinstance(error, NotLeaderOrFollowerError) or topic_id is None:
            return {"leader_id": -1, "leader_epoch": -1}
        image = self.ctx.broker.image
        topic = image.topic_by_id(topic_id)
        info = topic.partitions[index] if topic and 0 <= index < len(topic.partitions) else None
        if info is None:
            return {"leader_id": -1, "leader_epoch": -1}
        broker = image.brokers.get(info.leader)
        address = broker.endpoint(self.ctx.listener_name) if broker else None
        if broker is not None and address is not None:
            self.endpoints[broker.node_id] = {"node_id": broker.node_id, "host": address[0],
                                              "port": address[1], "rack": broker.rack}
        return {"leader_id": info.leader, "leader_epoch": info.leader_epoch}

    def node_endpoints(self) -> list[dict[str, Any]]:
        return list(self.endpoints.values())


def readable_topics(ctx: RequestContext, topic_ids: Iterable[uuid.UUID | None]
                    ) -> dict[uuid.UUID, str | None]:
    """Each topic id's name, None when unknown; a topic the principal may not
    READ maps to "" (Kafka checks READ on every topic a share request names)."""
    image = ctx.broker.image
    names: dict[uuid.UUID, str | None] = {}
    for topic_id in topic_ids:
        if topic_id is None or topic_id in names:
            continue
        topic = image.topic_by_id(topic_id)
        name = topic.name if topic else None
        if name is not None and ctx.broker.authorizer.enabled \
                and not ctx.authorize(AclOperation.READ, ResourceType.TOPIC, name):
            name = ""
        names[topic_id] = name
    return names


def leader_partition(ctx: RequestContext, names: dict[uuid.UUID, str | None],
                     topic_id: uuid.UUID | None, index: int) -> Partition:
    name = names.get(topic_id) if topic_id is not None else None
    if name is None:
        raise UnknownTopicIdError(f"unknown topic id {topic_id}")
    if name == "":
        raise TopicAuthorizationFailedError()
    partition = ctx.broker.replicas.get(name, index)
    if not partition.is_leader:
        raise NotLeaderOrFollowerError(f"not the leader of {name}-{index}")
    return partition


async def share_partition(ctx: RequestContext, names: dict[uuid.UUID, str | None],
                          group_id: str, topic_id: uuid.UUID | None, index: int,
                          ) -> tuple[Partition, SharePartitionHandle]:
    partition = leader_partition(ctx, names, topic_id, index)
    assert topic_id is not None
    handle = await ctx.broker.share_partitions.share_partition(group_id, topic_id, partition)
    return partition, handle


async def acknowledge(ctx: RequestContext, names: dict[uuid.UUID, str | None], group_id: str,
                      member_id: str, topic_id: uuid.UUID | None, index: int, batches: Any, *,
                      renew_allowed: bool, settings: ShareGroupSettings) -> None:
    """Apply one partition's acknowledgement batches; raises its error."""
    _, handle = await share_partition(ctx, names, group_id, topic_id, index)
    # Loaded with the share partition manager (the first share request's
    # broker.share_partitions), not with the handlers at start (issue 19).
    from strom.broker.share.share_partition import Acknowledgement

    acks = [Acknowledgement(b.first_offset, b.last_offset, tuple(b.acknowledge_types))
            for b in batches]
    await ctx.broker.share_partitions.acknowledge(handle, member_id, acks,
                                                  renew_allowed=renew_allowed, settings=settings)
