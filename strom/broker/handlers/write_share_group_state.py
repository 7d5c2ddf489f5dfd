"""WriteShareGroupState: a share partition's leader persists its state (KIP-932).

Versions: 0-1 (v1 adds DeliveryCompleteCount, KIP-1226). The batches are
combined with the stored ones (share/batches.py); the start offset moves
unless it is -1. Fenced by leader epoch and state epoch. Broker-to-broker:
CLUSTER_ACTION (share_state_requests.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.broker.share_state_requests import answer
from strom.errors import InvalidRequestError
from strom.protocol.api import ApiKey

if TYPE_CHECKING:
    from strom.coordinator.share.persister import StateBatch
    from strom.coordinator.share.records import ShareKey


def _batch(b: Any) -> StateBatch:
    from strom.coordinator.share.persister import DeliveryState, StateBatch

    try:
        state = DeliveryState(int(b.delivery_state))
    except ValueError:
        raise InvalidRequestError(f"Unknown delivery state {b.delivery_state}.") from None
    if b.last_offset < b.first_offset:
        raise InvalidRequestError("A state batch ends before it starts.")
    return StateBatch(int(b.first_offset), int(b.last_offset), state, int(b.delivery_count))


@handles(ApiKey.WRITE_SHARE_GROUP_STATE)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    # The share coordinator's types load with its first request, not at start.
    from strom.coordinator.share.shard import WriteData

    async def write(key: ShareKey, entry: Any) -> Mapping[str, Any]:
        if entry.leader_epoch < 0:
            raise InvalidRequestError("The leader epoch cannot be a negative number.")
        if entry.state_epoch < 0:
            raise InvalidRequestError("The state epoch cannot be a negative number.")
        data = WriteData(int(entry.state_epoch), int(entry.leader_epoch),
                         int(entry.start_offset), tuple(_batch(b) for b in entry.state_batches),
                         int(getattr(entry, "delivery_complete_count", -1)))
        await ctx.broker.coordinators.shares.write_state(key, data)
        return {}

    return {"results": await answer(ctx, request, write, {})}
