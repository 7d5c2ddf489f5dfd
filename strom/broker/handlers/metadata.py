"""Metadata: brokers, the controller, and topics with their partitions.

Versions: 0-13. A null topic list (v1+) or an empty one (v0) means every
topic. Unknown topics are created when both the request and
`auto.create.topics.enable` allow it; the response then already describes
the new topic. Topics may be named by id from v10.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from strom.broker.authorization import (
    allowed,
    authorized_names,
    cluster_allowed,
    cluster_operations_if,
    operations_if,
)
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.broker.topics import create_topic
from strom.cluster.image import INTERNAL_TOPICS, PartitionInfo, TopicInfo
from strom.errors import ErrorCode, InvalidRequestError, KafkaError
from strom.protocol.api import ApiKey
from strom.protocol.messages import ZERO_UUID
from strom.security.acl_types import AclOperation, ResourceType

# Kafka sends this when authorized operations were not requested.
AUTHORIZED_OPERATIONS_OMITTED = -(2**31)
# READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS:
# with no authorizer every operation is allowed.
ALL_TOPIC_OPERATIONS = sum(1 << op for op in (3, 4, 5, 6, 7, 8, 10, 11))


def describe_topic(topic: TopicInfo, authorized_operations: int,
                   offline: Container[tuple[str, int]] = (),
                   registered: Container[int] | None = None) -> dict[str, Any]:
    """`offline`: partitions whose log cannot serve here (unreadable files, a
    full disk); they carry KAFKA_STORAGE_ERROR and this broker as an offline
    replica, as Kafka's metadata does for a replica in an offline log dir.
    `registered`: the brokers of the cluster (None: every replica is); a
    replica on any other broker is listed offline, and a partition without a
    leader answers LEADER_NOT_AVAILABLE (retriable), as Kafka's do."""
    name = topic.name
    return {
        "error_code": ErrorCode.none,
        "name": name,
        "topic_id": topic.topic_id,
        "is_internal": name in INTERNAL_TOPICS,
        "partitions": [describe_partition(name, p, offline, registered)
                       for p in topic.partitions],
        "topic_authorized_operations": authorized_operations,
    }


def describe_partition(topic: str, p: PartitionInfo, offline: Container[tuple[str, int]] = (),
                       registered: Container[int] | None = None) -> dict[str, Any]:
    """One partition as Metadata and DescribeTopicPartitions show it."""
    stored_here_offline = (topic, p.partition) in offline
    gone = [r for r in p.replicas if registered is not None and r not in registered]
    if stored_here_offline:
        code = ErrorCode.kafka_storage_error
        gone = [p.leader, *(r for r in gone if r != p.leader)]
    elif p.leader < 0:
        code = ErrorCode.leader_not_available
    else:
        code = ErrorCode.none
    return {
        "error_code": code,
        "partition_index": p.partition,
        "leader_id": p.leader,
        "leader_epoch": p.leader_epoch,
        "replica_nodes": list(p.replicas),
        "isr_nodes": list(p.isr),
        "offline_replicas": gone,
    }


def _error_topic(name: str | None, code: ErrorCode, topic_id: Any = ZERO_UUID
                 ) -> dict[str, Any]:
    return {"error_code": code, "name": name, "topic_id": topic_id, "is_internal": False,
            "partitions": [], "topic_authorized_operations": AUTHORIZED_OPERATIONS_OMITTED}


_CONTROLLER_UNREACHABLE = frozenset({ErrorCode.network_exception, ErrorCode.request_timed_out,
                                     ErrorCode.not_controller})


def _leaders_without_listener(topics: list[dict[str, Any]], unreachable: Container[int],
                              api_version: int) -> None:
    code = ErrorCode.listener_not_found if api_version >= 6 else ErrorCode.leader_not_available
    for topic in topics:
        for partition in topic["partitions"]:
            if partition["leader_id"] in unreachable and partition["error_code"] == 0:
                partition.update(error_code=code, leader_id=-1)


@handles(ApiKey.METADATA)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    broker = ctx.broker
    image = broker.image
    include_ops = ctx.api_version >= 8 and bool(
        getattr(request, "include_topic_authorized_operations", False))

    def operations(name: str) -> int:
        # KIP-430: what this principal may do on the topic, when asked for.
        return operations_if(ctx, include_ops, ResourceType.TOPIC, name)

    requested = request.topics
    offline = broker.replicas.offline
    if ctx.api_version == 0 and not requested:
        requested = None
    topics: list[dict[str, Any]] = []
    if requested is None:
        # Topics the principal may not describe are left out, unnamed.
        visible = authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC,
                                   image.topics)
        topics = [describe_topic(t, operations(t.name), offline, image.brokers)
                  for t in image.topics.values() if t.name in visible]
    else:
        describable = authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, (
            image.topic_name(w.name, getattr(w, "topic_id", None)) for w in requested))
        auto_create = bool(getattr(request, "allow_auto_topic_creation", True)) and bool(
            broker.config.get("auto.create.topics.enable")
        )
        for wanted in requested:
            name = wanted.name
            topic_id = getattr(wanted, "topic_id", None)
            if ctx.api_version < 12 and (name is None or topic_id not in (None, ZERO_UUID)):
                # v10-v11 carry the fields but their responses cannot name a topic by
                # id alone; Kafka refuses them the same way (KafkaApis).
                raise InvalidRequestError(
                    f"topic ids are not supported in Metadata v{ctx.api_version}")
            if name is None:
                by_id = image.topic_by_id(topic_id) if topic_id else None
                if by_id is None:
                    topics.append(_error_topic(None, ErrorCode.unknown_topic_id, topic_id))
                elif by_id.name not in describable:
                    # Kafka: topic ids are not secret, the name is.
                    topics.append(_error_topic(None, ErrorCode.topic_authorization_failed,
                                               topic_id))
                else:
                    topics.append(describe_topic(by_id, operations(by_id.name), offline,
                                                 image.brokers))
                continue
            if name not in describable:
                # Whether it exists is not disclosed.
                topics.append(_error_topic(name, ErrorCode.topic_authorization_failed))
                continue
            topic = image.topics.get(name)
            if topic is None and auto_create and not (
                    cluster_allowed(ctx, AclOperation.CREATE)
                    or allowed(ctx, AclOperation.CREATE, ResourceType.TOPIC, name)):
                topics.append({**_error_topic(name, ErrorCode.topic_authorization_failed),
                               "is_internal": name in INTERNAL_TOPICS})
                continue
            if topic is None and auto_create:
                try:
                    topic = await create_topic(broker, name)
                except KafkaError as exc:
                    code = exc.code
                    if code == ErrorCode.topic_already_exists:
                        topic = broker.image.topics.get(name)
                    elif code in _CONTROLLER_UNREACHABLE:
                        # Asked of the controller, not created yet: Kafka's
                        # answer for a topic being created, which clients retry.
                        topics.append(_error_topic(name, ErrorCode.leader_not_available))
                        continue
                    else:
                        topics.append(_error_topic(name, code))
                        continue
            if topic is None:
                topics.append(_error_topic(name, ErrorCode.unknown_topic_or_partition))
            else:
                topics.append(describe_topic(topic, operations(name), offline, image.brokers))
        image = broker.image
    # Each broker's endpoint on the listener this client came in on; brokers
    # without that listener are left out, and partitions they lead answer
    # LISTENER_NOT_FOUND (v6+), as Kafka's KRaftMetadataCache does.
    brokers = []
    unreachable = set()
    for b in image.brokers.values():
        address = b.endpoint(ctx.listener_name)
        if address is None:
            unreachable.add(b.node_id)
        else:
            brokers.append({"node_id": b.node_id, "host": address[0], "port": address[1],
                            "rack": b.rack})
    if unreachable:
        _leaders_without_listener(topics, unreachable, ctx.api_version)
    return {
        "throttle_time": 0,
        "brokers": brokers,
        "cluster_id": image.cluster_id,
        "controller_id": image.controller_id,
        "topics": topics,
        "cluster_authorized_operations": cluster_operations_if(
            ctx, 8 <= ctx.api_version <= 10
            and bool(getattr(request, "include_cluster_authorized_operations", False))),
        "error_code": ErrorCode.none,
    }
