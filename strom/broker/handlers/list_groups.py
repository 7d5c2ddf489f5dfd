"""ListGroups: every group this broker coordinates.

Versions: 0-5; v4 filters by state (KIP-518), v5 by type (classic or
consumer, KIP-848), both case-insensitively.
"""

from __future__ import annotations

from typing import Any

from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.protocol.api import ApiKey


@handles(ApiKey.LIST_GROUPS)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    groups = ctx.broker.groups
    code, listed = await groups.list_groups(getattr(request, "states_filter", ()),
                                            getattr(request, "types_filter", ()))
    return {"throttle_time": 0, "error_code": code, "groups": listed}
