"""DescribeProducers: the active producers of partitions (kafka-transactions describe-producers).

Versions: 0. From each partition's producer state: epoch, last sequence and
timestamp, coordinator epoch and the first offset of its open transaction.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import DENIED_MESSAGES, allowed
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.errors import ErrorCode, KafkaError, error_code_for
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation, ResourceType


@handles(ApiKey.DESCRIBE_PRODUCERS)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    topics = []
    for topic in request.topics:
        partitions = []
        if not allowed(ctx, AclOperation.READ, ResourceType.TOPIC, topic.name):
            denied = ErrorCode.topic_authorization_failed
            topics.append({"name": topic.name, "partitions": [
                {"partition_index": index, "error_code": denied,
                 "error_message": DENIED_MESSAGES[denied], "active_producers": []}
                for index in topic.partition_indexes]})
            continue
        for index in topic.partition_indexes:
            try:
                partition = ctx.broker.replicas.get(topic.name, index)
            except KafkaError as exc:
                partitions.append({"partition_index": index, "error_code": error_code_for(exc),
                                   "error_message": exc.message, "active_producers": []})
                continue
            producers = [{
                "producer_id": e.producer_id, "producer_epoch": e.epoch,
                "last_sequence": e.last_sequence, "last_timestamp": e.last_timestamp,
                "coordinator_epoch": e.coordinator_epoch,
                "current_txn_start_offset": e.current_txn_first_offset,
            } for e in partition.producer_state.entries.values()]
            partitions.append({"partition_index": index, "error_code": ErrorCode.none,
                               "error_message": None, "active_producers": producers})
        topics.append({"name": topic.name, "partitions": partitions})
    return {"throttle_time": 0, "topics": topics}
