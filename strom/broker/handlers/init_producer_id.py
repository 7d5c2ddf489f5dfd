"""InitProducerId: a producer id and epoch for an idempotent or transactional producer.

Versions: 0-5, Kafka 4.4's stable range (its v6, KIP-939's two-phase commit
fields, is unstable there and not implemented here, so not advertised).
Without a transactional id every call returns a fresh producer id at epoch
0, as Kafka does (an idempotent producer bumps its epoch itself). With one,
the transaction coordinator answers: a new id, or the id's epoch bumped,
fencing the previous producer and aborting its open transaction
(CONCURRENT_TRANSACTIONS until that abort completes). v3+ may name the
current producer id and epoch (KIP-360) to recover by a bump.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import allowed, any_allowed, cluster_allowed
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.coordinator.txn.errors import for_version
from strom.errors import ErrorCode, KafkaError
from strom.protocol.api import ApiKey
from strom.protocol.messages import to_millis
from strom.security.acl_types import AclOperation, ResourceType


@handles(ApiKey.INIT_PRODUCER_ID, max_version=5)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    if request.transactional_id is not None:
        if not allowed(ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID,
                       request.transactional_id):
            return _refused(ErrorCode.transactional_id_authorization_failed)
    elif not (cluster_allowed(ctx, AclOperation.IDEMPOTENT_WRITE)
              or any_allowed(ctx, AclOperation.WRITE, ResourceType.TOPIC)):
        # KIP-679: WRITE on any topic is enough for an idempotent producer.
        return _refused(ErrorCode.cluster_authorization_failed)
    # A block of producer ids is reserved by a metadata commit, awaited
    # here rather than inside the coordinator's synchronous operations.
    try:
        await ctx.broker.producer_ids.ensure_block()
    except KafkaError as exc:
        return {"throttle_time": 0, "error_code": exc.code, "producer_id": -1,
                "producer_epoch": -1}
    if request.transactional_id is None:
        producer_id = ctx.broker.producer_ids.next_producer_id()
        return {"throttle_time": 0, "error_code": ErrorCode.none, "producer_id": producer_id,
                "producer_epoch": 0}
    coordinator = ctx.broker.transactions
    if await coordinator.coordinator_for(request.transactional_id) != ctx.broker.node_id:
        return {"throttle_time": 0, "error_code": ErrorCode.not_coordinator,
                "producer_id": -1, "producer_epoch": -1}
    code, producer_id, epoch = await coordinator.init_producer_id(
        request.transactional_id, to_millis(request.transaction_timeout),
        int(getattr(request, "producer_id", -1)), int(getattr(request, "producer_epoch", -1)))
    return {"throttle_time": 0, "error_code": for_version(code, ctx.api_version, 4),
            "producer_id": producer_id, "producer_epoch": epoch}


def _refused(code: ErrorCode) -> dict[str, Any]:
    return {"throttle_time": 0, "error_code": code, "producer_id": -1, "producer_epoch": -1}
