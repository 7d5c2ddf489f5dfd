"""DeleteTopics: delete topics named by name or, from v6, by topic id.

Versions: 1-6. With `delete.topic.enable=false` every topic fails with
TOPIC_DELETION_DISABLED (INVALID_REQUEST before v3), as in Kafka. A name or
id given twice fails with INVALID_REQUEST ("Duplicate topic name."), so does
an entry naming both a name and an id; unknown names get
UNKNOWN_TOPIC_OR_PARTITION, unknown ids UNKNOWN_TOPIC_ID. Deletion is
synchronous: the logs are gone when the response is sent (their directories
are removed on a worker thread meanwhile, broker/log_jobs.py, while other
clients are served). On a full disk the topic's logs are emptied first when
the metadata change does not fit (ReplicaManager.release_topic_space), so
deleting a topic frees space.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from typing import Any

from strom.broker.authorization import allowed, cluster_allowed
from strom.broker.client_quotas import MutationQuota, mutation_quota
from strom.broker.context import RequestContext
from strom.broker.forwarding import forwarded_to_controller
from strom.broker.router import handles
from strom.cluster.image import INTERNAL_TOPICS
from strom.errors import ErrorCode, KafkaError, LogDirFullError
from strom.protocol.api import ApiKey
from strom.protocol.messages import ZERO_UUID
from strom.security.acl_types import AclOperation, ResourceType

log = logging.getLogger(__name__)

# Kafka's default messages for the errors it returns without one of its own.
_UNKNOWN_TOPIC = "This server does not host this topic-partition."
_UNKNOWN_TOPIC_ID = "This server does not host this topic ID."


def _result(name: str | None, topic_id: uuid.UUID, code: ErrorCode,
            message: str | None = None) -> dict[str, Any]:
    return {"name": name, "topic_id": topic_id, "error_code": code, "error_message": message}


def _requested(request: Any) -> list[tuple[str | None, uuid.UUID]]:
    """(name, id) per requested topic: v1-5 list names, v6 lists states."""
    names = getattr(request, "topic_names", None)
    if names is not None:
        return [(name, ZERO_UUID) for name in names]
    return [(t.name, t.topic_id or ZERO_UUID) for t in getattr(request, "topics", ())]


@handles(ApiKey.DELETE_TOPICS)
@forwarded_to_controller
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    broker = ctx.broker
    requested = _requested(request)
    if not broker.config.get("delete.topic.enable"):
        code = (ErrorCode.invalid_request if ctx.api_version < 3
                else ErrorCode.topic_deletion_disabled)
        message = "Topic deletion is disabled."
        return {"throttle_time": 0,
                "responses": [_result(n, i, code, message) for n, i in requested]}

    names = Counter(n for n, i in requested if n is not None and i == ZERO_UUID)
    ids = Counter(i for n, i in requested if n is None and i != ZERO_UUID)
    results: list[dict[str, Any]] = []
    reported: set[str | uuid.UUID] = set()
    # controller_mutation_rate: strict (THROTTLING_QUOTA_EXCEEDED) from v5, as Kafka.
    quota = mutation_quota(ctx, 5)
    for name, topic_id in requested:
        if name is None and topic_id == ZERO_UUID:
            results.append(_result(None, ZERO_UUID, ErrorCode.invalid_request,
                                   "Neither topic name nor id were specified."))
        elif name is not None and topic_id != ZERO_UUID:
            results.append(_result(name, topic_id, ErrorCode.invalid_request,
                                   "You may not specify both topic name and topic id."))
        elif name is not None and names[name] > 1:
            if name not in reported:
                reported.add(name)
                results.append(_result(name, ZERO_UUID, ErrorCode.invalid_request,
                                       "Duplicate topic name."))
        elif name is None and ids[topic_id] > 1:
            if topic_id not in reported:
                reported.add(topic_id)
                results.append(_result(None, topic_id, ErrorCode.invalid_request,
                                       "Duplicate topic id."))
        else:
            results.append(await _delete(ctx, name, topic_id, quota))
    # The logs are removed on a worker thread (broker/log_jobs.py): answered once gone.
    await broker.replicas.settled()
    return {"throttle_time": quota.throttle_time_ms(), "responses": results}


async def _delete(ctx: RequestContext, name: str | None, topic_id: uuid.UUID,
                  quota: MutationQuota) -> dict[str, Any]:
    broker = ctx.broker
    everything = cluster_allowed(ctx, AclOperation.DELETE)

    def may(operation: AclOperation, topic: str) -> bool:
        return everything or allowed(ctx, operation, ResourceType.TOPIC, topic)

    denied = ErrorCode.topic_authorization_failed
    if name is None:
        by_id = broker.image.topic_by_id(topic_id)
        if by_id is None:
            return _result(None, topic_id, ErrorCode.unknown_topic_id, _UNKNOWN_TOPIC_ID)
        name = by_id.name
        if not may(AclOperation.DELETE, name):
            # Ids are not secret; the name is shown only to who may describe it.
            return _result(name if may(AclOperation.DESCRIBE, name) else None, topic_id,
                           denied, None)
    else:
        if not may(AclOperation.DESCRIBE, name):
            return _result(name, ZERO_UUID, denied, None)  # existence not disclosed
        by_name = broker.image.topics.get(name)
        if by_name is None:
            return _result(name, ZERO_UUID, ErrorCode.unknown_topic_or_partition,
                           _UNKNOWN_TOPIC)
        if not may(AclOperation.DELETE, name):
            return _result(name, ZERO_UUID, denied, None)
        topic_id = by_name.topic_id
    try:
        records = broker.metadata.operations.delete_topic_records(name)
        quota.record(len(broker.image.topics[name].partitions))
        if name in INTERNAL_TOPICS:
            # Kafka allows it too (only ACLs protect these topics); it drops every
            # committed offset or transaction state, so the operator must see who.
            log.warning("deleting internal topic %s at the request of client %r (%s): its "
                        "state (committed offsets, transactions) is lost; it is recreated "
                        "empty when next needed", name, ctx.header.client_id or "",
                        ctx.client_host or "unknown host")
        try:
            await broker.metadata.commit(records)
        except LogDirFullError:
            # The metadata file needs room that the topic's own data may be
            # taking: empty its logs first (they were going anyway), retry once.
            broker.replicas.release_topic_space(name)
            await broker.metadata.commit(records)
    except KafkaError as exc:
        return _result(name, topic_id, exc.code, exc.message)
    return _result(name, topic_id, ErrorCode.none)
