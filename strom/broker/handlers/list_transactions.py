"""ListTransactions: the transactional ids this broker coordinates (kafka-transactions list).

Versions: 0-2 (v1 filters by duration, KIP-994; v2 by id pattern, KIP-1152).
Unknown state names are returned in `unknown_state_filters`.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import allowed
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.errors import ErrorCode, KafkaError, error_code_for
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation, ResourceType


@handles(ApiKey.LIST_TRANSACTIONS)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    coordinator = ctx.broker.transactions
    # Loaded with the transaction coordinator (the first ctx.broker.transactions),
    # not at start with the handlers (broker/coordinators.py; issue 19).
    from strom.coordinator.txn.state import TxnState

    states = list(request.state_filters)
    unknown = [s for s in states if TxnState.of_display(s) is None]
    try:
        found = coordinator.list_transactions(
            states, [int(p) for p in request.producer_id_filters],
            int(getattr(request, "duration_filter", -1)),
            getattr(request, "transactional_id_pattern", None))
    except KafkaError as exc:  # an invalid id pattern (v2)
        return {"throttle_time": 0, "error_code": error_code_for(exc),
                "unknown_state_filters": [], "transaction_states": []}
    if ctx.broker.authorizer.enabled:
        found = [m for m in found if allowed(ctx, AclOperation.DESCRIBE,
                                             ResourceType.TRANSACTIONAL_ID, m.transactional_id)]
    return {"throttle_time": 0, "error_code": ErrorCode.none, "unknown_state_filters": unknown,
            "transaction_states": [
                {"transactional_id": m.transactional_id, "producer_id": m.producer_id,
                 "transaction_state": m.state.display} for m in found]}
