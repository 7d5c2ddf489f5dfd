"""AddOffsetsToTxn: add a group's `__consumer_offsets` partition to a transaction.

Versions: 0-4. The producer then sends TxnOffsetCommit to the group
coordinator; the transaction's marker on that partition commits the offsets.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import allowed
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.coordinator.txn.errors import for_version
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation, ResourceType


@handles(ApiKey.ADD_OFFSETS_TO_TXN)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    coordinator = ctx.broker.transactions
    if not allowed(ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID,
                   request.transactional_id):
        code = ErrorCode.transactional_id_authorization_failed
    elif not allowed(ctx, AclOperation.READ, ResourceType.GROUP, request.group_id):
        code = ErrorCode.group_authorization_failed
    elif await coordinator.coordinator_for(request.transactional_id) != ctx.broker.node_id:
        code = ErrorCode.not_coordinator
    elif not request.group_id:
        code = ErrorCode.invalid_group_id
    else:
        code = await coordinator.add_partitions(
            request.transactional_id, request.producer_id, request.producer_epoch,
            [coordinator.group_partition(request.group_id)])
    return {"throttle_time": 0, "error_code": for_version(code, ctx.api_version, 2)}
