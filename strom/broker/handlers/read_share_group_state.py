"""ReadShareGroupState: a share partition's state, for its leader (KIP-932).

Versions: 0. A leader epoch newer than the stored one is recorded (the old
leader is fenced from then on); an older one is FENCED_LEADER_EPOCH; a
partition never initialized is INVALID_REQUEST, as in Kafka 4.4.
Broker-to-broker: CLUSTER_ACTION (share_state_requests.py).
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

_FAILED = {"state_epoch": 0, "start_offset": -1, "state_batches": []}


@handles(ApiKey.READ_SHARE_GROUP_STATE)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    async def read(key: ShareKey, entry: Any) -> Mapping[str, Any]:
        if entry.leader_epoch < 0:
            raise InvalidRequestError("The leader epoch cannot be a negative number.")
        state = await ctx.broker.coordinators.shares.read_state(key, int(entry.leader_epoch))
        return {"state_epoch": state.state_epoch, "start_offset": state.start_offset,
                "state_batches": [
                    {"first_offset": b.first_offset, "last_offset": b.last_offset,
                     "delivery_state": int(b.delivery_state),
                     "delivery_count": b.delivery_count} for b in state.batches]}

    return {"results": await answer(ctx, request, read, _FAILED)}
