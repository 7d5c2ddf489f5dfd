"""The five *ShareGroupState APIs (KIP-932) answered one share partition at a time.

Initialize/Read/Write/Delete/ReadSummary ShareGroupState are sent by brokers
(a share partition's leader, the group coordinator) to the share
coordinator of each share partition. Kafka authorizes them with
CLUSTER_ACTION on the cluster, refuses an empty group id with
an empty answer (no results, as Kafka's ShareCoordinatorService, which also
answers nothing when a topic lists no partitions), and answers every (topic
id, partition) on its own: one failing partition does not fail the others.
Each partition runs the share coordinator's operation; its typed error
becomes its code here.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from strom.broker.authorization import DENIED_MESSAGES, cluster_allowed
from strom.broker.context import RequestContext
from strom.errors import ErrorCode, KafkaError
from strom.security.acl_types import AclOperation

if TYPE_CHECKING:
    from strom.coordinator.share.records import ShareKey

log = logging.getLogger(__name__)

#: (key, the request's partition entry) -> the partition's answer fields.
PartitionOp = Callable[["ShareKey", Any], Awaitable[Mapping[str, Any]]]


def coordinator_code(exc: KafkaError) -> ErrorCode:
    """The code a share-state answer carries for a coordinator failure: a
    write that could not reach its replicas is COORDINATOR_NOT_AVAILABLE
    (the caller retries), a partition led elsewhere NOT_COORDINATOR (the
    caller finds the coordinator again), as Kafka's runtime maps them."""
    code = exc.code
    if code in (ErrorCode.not_enough_replicas, ErrorCode.not_enough_replicas_after_append,
                ErrorCode.request_timed_out):
        return ErrorCode.coordinator_not_available
    if code in (ErrorCode.not_leader_or_follower, ErrorCode.kafka_storage_error):
        return ErrorCode.not_coordinator
    return code


async def answer(ctx: RequestContext, request: Any, op: PartitionOp,
                 error_fields: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The `results` of a share-state response: `op` run on each partition,
    `error_fields` filling a failed partition's answer."""
    # The share coordinator's records (and what they import) load with the
    # first share-state request, not with the handlers at start (issue 19).
    from strom.coordinator.share.records import ShareKey

    permitted = cluster_allowed(ctx, AclOperation.CLUSTER_ACTION)
    group_id = request.group_id
    if permitted and (not group_id or any(not t.partitions for t in request.topics)):
        return []
    results = []
    for topic in request.topics:
        partitions = []
        for entry in topic.partitions:
            code = ErrorCode.none
            message: str | None = None
            fields: Mapping[str, Any] = {}
            if not permitted:
                code = ErrorCode.cluster_authorization_failed
                message = DENIED_MESSAGES[code]
            elif topic.topic_id is None or topic.topic_id == uuid.UUID(int=0):
                code, message = ErrorCode.invalid_request, "The topic id cannot be null."
            elif entry.partition < 0:
                code = ErrorCode.invalid_request
                message = "The partition id cannot be a negative number."
            else:
                try:
                    fields = await op(ShareKey(group_id, topic.topic_id, int(entry.partition)),
                                      entry)
                except KafkaError as exc:
                    code, message = coordinator_code(exc), exc.message
                except Exception:
                    log.exception("share state operation on %s:%s-%d failed", group_id,
                                  topic.topic_id, entry.partition)
                    code = ErrorCode.unknown_server_error
            if code != ErrorCode.none:
                fields = error_fields
            partitions.append({"partition": entry.partition, "error_code": code,
                               "error_message": message, **fields})
        results.append({"topic_id": topic.topic_id, "partitions": partitions})
    return results
