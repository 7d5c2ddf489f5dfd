"""WriteTxnMarkers: write COMMIT/ABORT markers to partitions this broker leads.

Versions: 1-2 (v0 was removed in Kafka 4.0). Sent by transaction
coordinators (and Kafka's `kafka-transactions abort` tool). A single node's
own coordinator writes markers directly, through the same
`Partition.write_txn_marker`.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import cluster_allowed
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.cluster.image import GROUP_METADATA_TOPIC
from strom.errors import ErrorCode, KafkaError, error_code_for
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation


@handles(ApiKey.WRITE_TXN_MARKERS, min_version=1)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    broker = ctx.broker
    markers = []
    # Kafka: ALTER on the cluster (the admin client's abort) or CLUSTER_ACTION (brokers).
    permitted = (cluster_allowed(ctx, AclOperation.ALTER)
                 or cluster_allowed(ctx, AclOperation.CLUSTER_ACTION))
    for marker in request.markers:
        topics = []
        for topic in marker.topics:
            partitions = []
            for index in topic.partition_indexes:
                code = ErrorCode.none
                if not permitted:
                    partitions.append({"partition_index": index,
                                       "error_code": ErrorCode.cluster_authorization_failed})
                    continue
                try:
                    partition = broker.replicas.get(topic.name, index)
                    end = partition.write_txn_marker(
                        marker.producer_id, marker.producer_epoch, marker.coordinator_epoch,
                        marker.transaction_result)
                    if topic.name == GROUP_METADATA_TOPIC:
                        broker.groups.on_transaction_marker(index, marker.producer_id,
                                                            marker.transaction_result)
                    await partition.wait_durable(end)
                except KafkaError as exc:
                    code = error_code_for(exc)
                partitions.append({"partition_index": index, "error_code": code})
            topics.append({"name": topic.name, "partitions": partitions})
        markers.append({"producer_id": marker.producer_id, "topics": topics})
    return {"markers": markers}
