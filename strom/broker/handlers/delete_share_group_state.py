"""DeleteShareGroupState: forget a share partition's state (KIP-932).

Versions: 0. Sent by the group coordinator when a share group is deleted or
its offsets for a topic are (DeleteGroups, DeleteShareGroupOffsets). State
never written is deleted successfully. Broker-to-broker: CLUSTER_ACTION
(share_state_requests.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.broker.share_state_requests import answer
from strom.protocol.api import ApiKey

if TYPE_CHECKING:
    from strom.coordinator.share.records import ShareKey


@handles(ApiKey.DELETE_SHARE_GROUP_STATE)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    async def delete(key: ShareKey, entry: Any) -> Mapping[str, Any]:
        await ctx.broker.coordinators.shares.delete_state(key)
        return {}

    return {"results": await answer(ctx, request, delete, {})}
