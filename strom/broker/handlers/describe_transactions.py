"""DescribeTransactions: the state of transactional ids (kafka-transactions describe).

Versions: 0.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import allowed, authorized_names
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation, ResourceType


@handles(ApiKey.DESCRIBE_TRANSACTIONS)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    broker = ctx.broker
    coordinator = broker.transactions
    states = []
    for transactional_id in request.transactional_ids:
        empty = {"transactional_id": transactional_id, "transaction_state": "",
                 "transaction_timeout": 0, "transaction_start_time": -1,
                 "producer_id": -1, "producer_epoch": -1, "topics": []}
        if not allowed(ctx, AclOperation.DESCRIBE, ResourceType.TRANSACTIONAL_ID,
                       transactional_id):
            states.append({**empty,
                           "error_code": ErrorCode.transactional_id_authorization_failed})
            continue
        if await coordinator.coordinator_for(transactional_id) != broker.node_id:
            states.append({**empty, "error_code": ErrorCode.not_coordinator})
            continue
        code, m = coordinator.describe(transactional_id)
        if m is None:
            states.append({**empty, "error_code": code})
            continue
        by_topic: dict[str, list[int]] = {}
        # Topics the principal may not describe are left out (as in Kafka).
        visible = authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC,
                                   (t for t, _ in m.partitions))
        for topic, index in sorted(tp for tp in m.partitions if tp[0] in visible):
            by_topic.setdefault(topic, []).append(index)
        states.append({
            "error_code": ErrorCode.none, "transactional_id": transactional_id,
            "transaction_state": m.state.display, "transaction_timeout": m.timeout_ms,
            "transaction_start_time": m.start_ms, "producer_id": m.producer_id,
            "producer_epoch": m.producer_epoch,
            "topics": [{"topic": t, "partitions": ps} for t, ps in by_topic.items()],
        })
    return {"throttle_time": 0, "transaction_states": states}
