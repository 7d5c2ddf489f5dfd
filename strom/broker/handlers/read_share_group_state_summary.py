"""ReadShareGroupStateSummary: a share partition's start offset and epochs (KIP-932).

Versions: 0-1 (v1 adds DeliveryCompleteCount, KIP-1226). What
DescribeShareGroupOffsets reports. A partition never initialized answers
start offset -1 without an error, as Kafka 4.4 does. Broker-to-broker:
CLUSTER_ACTION (share_state_requests.py).
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

_FAILED = {"state_epoch": 0, "leader_epoch": 0, "start_offset": -1,
           "delivery_complete_count": -1}


@handles(ApiKey.READ_SHARE_GROUP_STATE_SUMMARY)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    async def summary(key: ShareKey, entry: Any) -> Mapping[str, Any]:
        state = ctx.broker.coordinators.shares.read_summary(key)
        if state is None:  # Kafka 4.4's answer for a share partition never initialized
            return {"state_epoch": 0, "leader_epoch": 0, "start_offset": -1,
                    "delivery_complete_count": -1}
        return {"state_epoch": state.state_epoch, "leader_epoch": state.leader_epoch,
                "start_offset": state.start_offset,
                "delivery_complete_count": state.delivery_complete_count}

    return {"results": await answer(ctx, request, summary, _FAILED)}
