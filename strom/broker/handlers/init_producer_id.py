"""InitProducerId: a producer id and epoch for an idempotent producer.

Versions: 0-6. Without a transactional id every call returns a fresh
producer id at epoch 0, as Kafka does (an idempotent producer bumps its
epoch itself). Transactional ids need the transaction coordinator, which
is not built yet: they get COORDINATOR_NOT_AVAILABLE.
"""

from __future__ import annotations

from typing import Any

from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey


@handles(ApiKey.INIT_PRODUCER_ID)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    if request.transactional_id is not None:
        return {"throttle_time": 0, "error_code": ErrorCode.coordinator_not_available,
                "producer_id": -1, "producer_epoch": -1}
    producer_id = ctx.broker.producer_ids.next_producer_id()
    return {"throttle_time": 0, "error_code": ErrorCode.none, "producer_id": producer_id,
            "producer_epoch": 0}
