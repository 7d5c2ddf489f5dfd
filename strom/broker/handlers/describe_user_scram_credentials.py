"""DescribeUserScramCredentials: which SCRAM mechanisms (and iterations) each
user has credentials for; never the credentials.

Versions: 0. No users (null or empty): every user with a credential. As
Kafka's ScramImage.describe: a user named twice gets DUPLICATE_RESOURCE, a
user without credentials RESOURCE_NOT_FOUND, with Kafka's messages. Needs
DESCRIBE on the cluster (else CLUSTER_AUTHORIZATION_FAILED for the request).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from strom.broker.authorization import cluster_allowed
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation


@handles(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    if not cluster_allowed(ctx, AclOperation.DESCRIBE):
        return {"throttle_time": 0, "error_code": ErrorCode.cluster_authorization_failed,
                "error_message": "Cluster authorization failed.", "results": []}
    credentials = ctx.broker.image.scram_credentials
    if request.users:
        counts = Counter(u.name for u in request.users)
        names = list(counts)
    else:
        counts = Counter()
        names = sorted(credentials)
    results = []
    for name in names:
        result: dict[str, Any] = {"user": name, "error_code": ErrorCode.none,
                                  "error_message": None, "credential_infos": []}
        mechanisms = credentials.get(name, {})
        if counts[name] > 1:
            result.update(error_code=ErrorCode.duplicate_resource, error_message=(
                f"Cannot describe SCRAM credentials for the same user twice in a single "
                f"request: {name}"))
        elif not mechanisms:
            result.update(error_code=ErrorCode.resource_not_found, error_message=(
                f"Attempt to describe a user credential that does not exist: {name}"))
        else:
            result["credential_infos"] = [
                {"mechanism": code, "iterations": record.iterations}
                for code, record in sorted(mechanisms.items())]
        results.append(result)
    return {"throttle_time": 0, "error_code": ErrorCode.none, "error_message": None,
            "results": results}
