"""AlterPartitionReassignments: an operator moves partitions' replicas
(kafka-reassign-partitions.sh --execute / --cancel, Admin.alterPartitionReassignments).

Versions: 0-1 (v1, KIP-860: allow_replication_factor_change; false refuses a
target of another size with INVALID_REPLICATION_FACTOR). A controller API:
another broker forwards it (broker/forwarding.py). Each partition is decided
as Kafka's controller does (cluster/reassignment.py): the reassignment starts
(or, when the target is already in sync, completes) in one metadata batch
for the whole request, answered once committed; the replicas move while
clients carry on. A null replica list cancels (NO_REASSIGNMENT_IN_PROGRESS
when there is none); a target naming an unregistered broker, none or one
twice is INVALID_REPLICA_ASSIGNMENT; an unknown topic or partition
UNKNOWN_TOPIC_OR_PARTITION.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import DENIED_MESSAGES, cluster_allowed
from strom.broker.context import RequestContext
from strom.broker.forwarding import error_response, forwarded_to_controller
from strom.broker.router import handles
from strom.cluster.image import MetadataRecord
from strom.cluster.validation import check_records_per_user_op
from strom.errors import ErrorCode, KafkaError, NotControllerError
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation

Result = tuple[int, ErrorCode, str | None]  # (partition, error code, message)


@handles(ApiKey.ALTER_PARTITION_REASSIGNMENTS)
@forwarded_to_controller
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    if not cluster_allowed(ctx, AclOperation.ALTER):
        denied = ErrorCode.cluster_authorization_failed
        return error_response(ApiKey(ctx.header.api_key), request, denied,
                              DENIED_MESSAGES[denied])
    broker = ctx.broker
    allow = bool(getattr(request, "allow_replication_factor_change", True))
    # Rebuilt each time the operation runs (again, on a newer image, if stale).
    results: list[tuple[str, list[Result]]] = []

    def alter() -> list[MetadataRecord]:
        operations = broker.metadata.operations
        results.clear()
        records: list[MetadataRecord] = []
        for topic in request.topics:
            answers: list[Result] = []
            results.append((topic.name, answers))
            for data in topic.partitions:
                index = int(data.partition_index)
                target = None if data.replicas is None else [int(r) for r in data.replicas]
                try:
                    record = operations.reassignment_record(topic.name, index, target, allow)
                except KafkaError as exc:
                    answers.append((index, exc.code, exc.message))
                    continue
                if record is not None:
                    records.append(record)
                answers.append((index, ErrorCode.none, None))
        check_records_per_user_op(len(records))
        return records

    try:
        if broker.image.controller_id != broker.metadata.node_id:
            raise NotControllerError(f"broker {broker.metadata.node_id} is not the controller")
        await broker.metadata.submit(alter)
    except KafkaError as exc:
        return _error_response(request, exc.code, exc.message)
    return {"throttle_time": 0, "allow_replication_factor_change": allow,
            "error_code": ErrorCode.none, "error_message": None,
            "responses": [
                {"name": name, "partitions": [
                    {"partition_index": index, "error_code": code, "error_message": message}
                    for index, code, message in answers]}
                for name, answers in results]}


def _error_response(request: Any, code: ErrorCode, message: str | None) -> dict[str, Any]:
    """Every partition failed with `code`, and the request too (Kafka's getErrorResponse)."""
    return {"throttle_time": 0,
            "allow_replication_factor_change": bool(
                getattr(request, "allow_replication_factor_change", True)),
            "error_code": code, "error_message": message,
            "responses": [
                {"name": t.name, "partitions": [
                    {"partition_index": p.partition_index, "error_code": code,
                     "error_message": message} for p in t.partitions]}
                for t in request.topics]}
