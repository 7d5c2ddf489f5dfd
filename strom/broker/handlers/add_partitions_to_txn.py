"""AddPartitionsToTxn: add partitions to a producer's ongoing transaction.

Versions: 0-5. v0-3 are the client's form, one transaction per request;
v4+ batch transactions (KIP-890), for brokers, and may only verify
(`verify_only`) that partitions are already in the transaction. Partitions
of unknown topics get UNKNOWN_TOPIC_OR_PARTITION and the others
OPERATION_NOT_ATTEMPTED, as in Kafka; otherwise one error for all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strom.broker.authorization import allowed, authorized_names, cluster_allowed
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.cluster.image import INTERNAL_TOPICS
from strom.coordinator.txn.errors import for_version
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation, ResourceType

if TYPE_CHECKING:
    from strom.coordinator.txn.state import TopicPartition


def _results(by_partition: dict[TopicPartition, ErrorCode]) -> list[dict[str, Any]]:
    topics: dict[str, list[dict[str, Any]]] = {}
    for (topic, index), code in by_partition.items():
        topics.setdefault(topic, []).append(
            {"partition_index": index, "partition_error_code": code})
    return [{"name": t, "results_by_partition": ps} for t, ps in topics.items()]


async def _one(ctx: RequestContext, transactional_id: str, producer_id: int,
               producer_epoch: int, partitions: list[TopicPartition],
               verify_only: bool) -> dict[TopicPartition, ErrorCode]:
    broker = ctx.broker
    coordinator = broker.transactions
    if ctx.api_version <= 3:
        # From a client (v4+ come from brokers, authorized as a whole).
        if not allowed(ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID,
                       transactional_id):
            return dict.fromkeys(partitions, ErrorCode.transactional_id_authorization_failed)
        writable = authorized_names(ctx, AclOperation.WRITE, ResourceType.TOPIC,
                                    (t for t, _ in partitions if t not in INTERNAL_TOPICS))
    else:
        writable = {t for t, _ in partitions}
    unknown = {tp for tp in partitions if tp[0] not in broker.image.topics
               or not 0 <= tp[1] < len(broker.image.topics[tp[0]].partitions)}
    if unknown or any(t not in writable for t, _ in partitions):
        # Any failed check fails the whole transaction's request (as in Kafka).
        return {tp: ErrorCode.topic_authorization_failed if tp[0] not in writable
                else ErrorCode.unknown_topic_or_partition if tp in unknown
                else ErrorCode.operation_not_attempted for tp in partitions}
    if await coordinator.coordinator_for(transactional_id) != broker.node_id:
        return dict.fromkeys(partitions, ErrorCode.not_coordinator)
    if verify_only:
        return coordinator.verify_partitions(transactional_id, producer_id, producer_epoch,
                                             partitions)
    code = await coordinator.add_partitions(transactional_id, producer_id, producer_epoch,
                                            partitions)
    return dict.fromkeys(partitions, for_version(code, ctx.api_version, 2))


@handles(ApiKey.ADD_PARTITIONS_TO_TXN)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    if ctx.api_version <= 3:
        partitions = [(t.name, int(p)) for t in request.v3_and_below_topics for p in t.partitions]
        found = await _one(ctx, request.v3_and_below_transactional_id,
                           request.v3_and_below_producer_id,
                           request.v3_and_below_producer_epoch, partitions, False)
        return {"throttle_time": 0, "results_by_topic_v3_and_below": _results(found)}
    if not cluster_allowed(ctx, AclOperation.CLUSTER_ACTION):
        return {"throttle_time": 0, "error_code": ErrorCode.cluster_authorization_failed,
                "results_by_transaction": []}
    results = []
    for txn in request.transactions:
        partitions = [(t.name, int(p)) for t in txn.topics for p in t.partitions]
        found = await _one(ctx, txn.transactional_id, txn.producer_id, txn.producer_epoch,
                           partitions, txn.verify_only)
        results.append({"transactional_id": txn.transactional_id,
                        "topic_results": _results(found)})
    return {"throttle_time": 0, "error_code": ErrorCode.none,
            "results_by_transaction": results}
