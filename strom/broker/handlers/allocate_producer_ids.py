"""AllocateProducerIds: the controller hands a broker a block of producer ids.

Version 0. A broker-to-controller API: Kafka serves it on the controller
listener only, so it is handled here but not advertised to clients in
ApiVersions. Only the controller answers (NOT_CONTROLLER elsewhere); a
broker the controller does not know as registered, or whose registration
has another epoch (the create revision of its etcd key) than the request
names, gets STALE_BROKER_EPOCH, as in Kafka. An epoch of -1 is not compared
(the request schema's default).
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import cluster_allowed
from strom.broker.context import RequestContext
from strom.broker.controller_channel import reserve_producer_ids
from strom.broker.router import handles
from strom.cluster.partition_changes import check_broker_epoch
from strom.coordinator.txn.producer_ids import BLOCK_SIZE
from strom.errors import ErrorCode, KafkaError, NotControllerError, StaleBrokerEpochError
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation


@handles(ApiKey.ALLOCATE_PRODUCER_IDS, advertised=False)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    broker = ctx.broker
    if not cluster_allowed(ctx, AclOperation.CLUSTER_ACTION):
        return {"throttle_time": 0, "error_code": ErrorCode.cluster_authorization_failed,
                "producer_id_start": -1, "producer_id_len": 0}
    try:
        if broker.image.controller_id != broker.metadata.node_id:
            raise NotControllerError(f"broker {broker.metadata.node_id} is not the controller")
        if request.broker_id not in broker.image.brokers:
            raise StaleBrokerEpochError(f"broker {request.broker_id} is not registered")
        if request.broker_epoch != -1:
            check_broker_epoch(broker.image, request.broker_id, request.broker_epoch)
        start, count = await reserve_producer_ids(broker.metadata, request.broker_id,
                                                  BLOCK_SIZE)
    except KafkaError as exc:
        return {"throttle_time": 0, "error_code": exc.code, "producer_id_start": -1,
                "producer_id_len": 0}
    return {"throttle_time": 0, "error_code": ErrorCode.none, "producer_id_start": start,
            "producer_id_len": count}
