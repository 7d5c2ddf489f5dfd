"""FindCoordinator: which broker coordinates a group (or a transaction).

Versions: 0-6; v4+ batches keys (KIP-699). Groups (key type 0) map to the
leader of their `__consumer_offsets` partition, chosen as Kafka chooses it.
Transactional ids (key type 1) map to the leader of their
`__transaction_state` partition, by the same rule. Share partitions (key
type 2, v6+, KIP-932) are "groupId:topicId:partition" keys, sent by brokers
(CLUSTER_ACTION), mapped to the leader of their `__share_group_state`
partition; a key not of that shape is INVALID_REQUEST, as are other types.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import DENIED_MESSAGES, allowed, cluster_allowed
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.coordinator.share import parse_coordinator_key
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation, ResourceType

GROUP = 0
TRANSACTION = 1
SHARE = 2

_MESSAGES = {
    ErrorCode.coordinator_not_available: "The coordinator is not available.",
    ErrorCode.invalid_request: "Unsupported key type.",
}


async def _find(ctx: RequestContext, key: str, key_type: int) -> dict[str, Any]:
    broker = ctx.broker
    node: int | None = None
    if key_type == GROUP and not allowed(ctx, AclOperation.DESCRIBE, ResourceType.GROUP, key):
        code = ErrorCode.group_authorization_failed
    elif (key_type == TRANSACTION
          and not allowed(ctx, AclOperation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, key)):
        code = ErrorCode.transactional_id_authorization_failed
    elif key_type == SHARE and not cluster_allowed(ctx, AclOperation.CLUSTER_ACTION):
        code = ErrorCode.cluster_authorization_failed
    elif key_type == GROUP:
        code = ErrorCode.coordinator_not_available
        node = await broker.groups.coordinator_for(key)
    elif key_type == TRANSACTION:
        code = ErrorCode.coordinator_not_available
        node = await broker.transactions.coordinator_for(key)
    elif (key_type == SHARE and ctx.api_version >= 6
          and parse_coordinator_key(key) is not None):
        code = ErrorCode.coordinator_not_available
        node = await broker.coordinators.shares.coordinator_for_key(key)
    else:
        code = ErrorCode.invalid_request
    info = broker.image.brokers.get(node) if node is not None else None
    # The coordinator's endpoint on the listener the client came in on; one
    # without that listener is not available to this client (Kafka's answer).
    address = info.endpoint(ctx.listener_name) if info is not None else None
    if info is None or address is None:
        return {"key": key, "node_id": -1, "host": "", "port": -1, "error_code": code,
                "error_message": _MESSAGES.get(code) or DENIED_MESSAGES[code]}
    return {"key": key, "node_id": info.node_id, "host": address[0], "port": address[1],
            "error_code": ErrorCode.none, "error_message": "NONE"}


@handles(ApiKey.FIND_COORDINATOR)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    key_type = int(getattr(request, "key_type", GROUP))
    if ctx.api_version >= 4:
        return {"throttle_time": 0,
                "coordinators": [await _find(ctx, key, key_type)
                                 for key in request.coordinator_keys]}
    found = await _find(ctx, request.key, key_type)
    del found["key"]
    return {"throttle_time": 0, **found}
