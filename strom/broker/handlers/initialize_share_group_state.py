"""InitializeShareGroupState: start a share partition's state (KIP-932).

Versions: 0. Sent by the group coordinator when a share group first gets a
partition (start offset -1: the share partition resolves it with
share.auto.offset.reset) and by AlterShareGroupOffsets (a start offset and a
new state epoch). Broker-to-broker: CLUSTER_ACTION (share_state_requests.py).
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
    from strom.coordinator.share.records import ShareKey


@handles(ApiKey.INITIALIZE_SHARE_GROUP_STATE)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    async def initialize(key: ShareKey, entry: Any) -> Mapping[str, Any]:
        if entry.state_epoch < 0:
            raise InvalidRequestError("The state epoch cannot be a negative number.")
        await ctx.broker.coordinators.shares.initialize_state(
            key, int(entry.state_epoch), int(entry.start_offset))
        return {}

    return {"results": await answer(ctx, request, initialize, {})}
