"""EndTxn: commit or abort a producer's ongoing transaction.

Versions: 0-5. The coordinator writes PREPARE_COMMIT/ABORT and answers once
it is durable; the markers and the COMPLETE state follow in the background
(requests meanwhile get CONCURRENT_TRANSACTIONS). v5+ is transaction version
2 (KIP-890 part 2): the epoch is bumped at every end and the response
carries the producer id and epoch to continue with.
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


@handles(ApiKey.END_TXN)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    coordinator = ctx.broker.transactions
    pid, epoch = -1, -1
    if not allowed(ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID,
                   request.transactional_id):
        code = ErrorCode.transactional_id_authorization_failed
    elif await coordinator.coordinator_for(request.transactional_id) != ctx.broker.node_id:
        code = ErrorCode.not_coordinator
    else:
        code, pid, epoch = await coordinator.end_transaction(
            request.transactional_id, request.producer_id, request.producer_epoch,
            request.committed, transaction_version=2 if ctx.api_version >= 5 else 1)
    return {"throttle_time": 0, "error_code": for_version(code, ctx.api_version, 2),
            "producer_id": pid, "producer_epoch": epoch}
