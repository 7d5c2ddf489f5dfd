"""AlterPartition: a partition's leader asks the controller to change its ISR.

Versions: 2-3 (topics named by id; v3 carries each new ISR member's broker
epoch). A broker-to-controller API: Kafka serves it on the controller
listener only, so it is handled here but not advertised to clients in
ApiVersions. Only the controller answers (NOT_CONTROLLER elsewhere); a
request from a broker whose registration is not the one it names gets
STALE_BROKER_EPOCH for the whole request, as in Kafka. Each partition is
validated on its own (cluster/partition_changes.py); the valid ones are
committed in one metadata batch and answered with the partition as
committed.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import cluster_allowed
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.cluster.image import MetadataRecord, PartitionInfo
from strom.cluster.partition_changes import check_broker_epoch
from strom.errors import ErrorCode, KafkaError, NotControllerError, error_code_for
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation


@handles(ApiKey.ALTER_PARTITION, min_version=2, advertised=False)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    if not cluster_allowed(ctx, AclOperation.CLUSTER_ACTION):
        return {"throttle_time": 0, "error_code": ErrorCode.cluster_authorization_failed,
                "topics": []}
    broker = ctx.broker
    # topic index -> partition results; rebuilt each time the operation runs
    # (the store runs it again against a newer image when its first was stale).
    results: list[list[dict[str, Any]]] = []

    def alter() -> list[MetadataRecord]:
        operations = broker.metadata.operations
        check_broker_epoch(operations.image, request.broker_id, request.broker_epoch)
        results.clear()
        records: list[MetadataRecord] = []
        for topic in request.topics:
            answers: list[dict[str, Any]] = []
            results.append(answers)
            for data in topic.partitions:
                isr, epochs = _new_isr(data)
                try:
                    result = operations.alter_partition(
                        request.broker_id, request.broker_epoch, topic.topic_id,
                        data.partition_index, data.leader_epoch, data.partition_epoch, isr,
                        epochs)
                except KafkaError as exc:
                    answers.append(_failed(data.partition_index, error_code_for(exc)))
                    continue
                records += result.records
                answers.append(_altered(result.partition))
        return records

    try:
        if broker.image.controller_id != broker.metadata.node_id:
            raise NotControllerError(f"broker {broker.metadata.node_id} is not the controller")
        await broker.metadata.submit(alter)
    except KafkaError as exc:
        return {"throttle_time": 0, "error_code": exc.code, "topics": []}
    return {"throttle_time": 0, "error_code": ErrorCode.none,
            "topics": [{"topic_id": topic.topic_id, "partitions": answers}
                       for topic, answers in zip(request.topics, results, strict=True)]}


def _new_isr(data: Any) -> tuple[list[int], list[int] | None]:
    states = getattr(data, "new_isr_with_epochs", None)
    if states is None:  # v2: ids only
        return [int(b) for b in data.new_isr], None
    return [int(s.broker_id) for s in states], [int(s.broker_epoch) for s in states]


def _altered(partition: PartitionInfo) -> dict[str, Any]:
    return {"partition_index": partition.partition, "error_code": ErrorCode.none,
            "leader_id": partition.leader, "leader_epoch": partition.leader_epoch,
            "isr": list(partition.isr), "leader_recovery_state": 0,
            "partition_epoch": partition.partition_epoch}


def _failed(partition: int, code: ErrorCode) -> dict[str, Any]:
    return {"partition_index": partition, "error_code": code, "leader_id": -1,
            "leader_epoch": -1, "isr": [], "leader_recovery_state": 0,
            "partition_epoch": -1}
