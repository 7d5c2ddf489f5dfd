"""DescribeClientQuotas: the client quotas whose entity matches a filter.

Versions: 0-1. Answered from this broker's metadata image (as Kafka's brokers
answer from theirs; not forwarded). Filter components match an entity type
EXACT (a name), DEFAULT (the type's default entity) or SPECIFIED (any entity
that has the type); strict leaves out entities with types the filter does
not name. Bad filters fail the whole request with Kafka's codes and messages
(strom/security/quotas.py parse_filter). Needs DESCRIBE_CONFIGS on the
cluster (else CLUSTER_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

from typing import Any

from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.errors import ErrorCode, KafkaError
from strom.protocol.api import ApiKey
from strom.security.acl_types import CLUSTER_NAME, AclOperation, ResourceType
from strom.security.quotas import parse_filter


@handles(ApiKey.DESCRIBE_CLIENT_QUOTAS)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    if not ctx.authorize(AclOperation.DESCRIBE_CONFIGS, ResourceType.CLUSTER, CLUSTER_NAME):
        return _failed(ErrorCode.cluster_authorization_failed, "Cluster authorization failed.")
    try:
        wanted = parse_filter([(c.entity_type, c.match_type, c.match)
                               for c in request.components], bool(request.strict))
    except KafkaError as exc:
        return _failed(exc.code, exc.message)
    entries = [
        {"entity": [{"entity_type": t, "entity_name": n} for t, n in entity],
         "values": [{"key": k, "value": float(v)} for k, v in sorted(values.items())]}
        for entity, values in ctx.broker.image.client_quotas.items() if wanted.matches(entity)
    ]
    return {"throttle_time": 0, "error_code": ErrorCode.none, "error_message": None,
            "entries": entries}


def _failed(code: ErrorCode, message: str | None) -> dict[str, Any]:
    return {"throttle_time": 0, "error_code": code, "error_message": message, "entries": None}
