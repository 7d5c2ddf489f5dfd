"""DescribeAcls: the ACL bindings a filter matches.

Versions: 1-3. Needs DESCRIBE on the cluster (else
CLUSTER_AUTHORIZATION_FAILED) and an authorizer (else SECURITY_DISABLED), as
Kafka's AclApis. A filter with an UNKNOWN element is INVALID_REQUEST.
Matching is strom/security/acl_filters.py (ANY, MATCH, exact names). Served
from this broker's image, as Kafka's brokers answer from their authorizer's
copy of the metadata; bindings are grouped by resource pattern.
"""

from __future__ import annotations

from typing import Any

from strom.broker.context import RequestContext
from strom.broker.handlers.create_acls import refusal
from strom.broker.router import handles
from strom.cluster.image import AclRecord
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.security.acl_filters import AclBindingFilter, matching
from strom.security.acl_types import AclOperation


def _filter(request: Any) -> AclBindingFilter:
    return AclBindingFilter(int(request.resource_type_filter), request.resource_name_filter,
                            int(request.pattern_type_filter), request.principal_filter,
                            request.host_filter, int(request.operation),
                            int(request.permission_type))


@handles(ApiKey.DESCRIBE_ACLS)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    refused = refusal(ctx, AclOperation.DESCRIBE)
    if refused is not None:
        return _failed(*refused)
    wanted = _filter(request)
    error = wanted.error()
    if error is not None:
        return _failed(ErrorCode.invalid_request, error)
    resources: dict[tuple[int, str, int], list[AclRecord]] = {}
    for acl in matching(ctx.broker.image.acls, wanted):
        resources.setdefault((acl.resource_type, acl.resource_name, acl.pattern_type),
                             []).append(acl)
    return {"throttle_time": 0, "error_code": ErrorCode.none, "error_message": None,
            "resources": [
                {"resource_type": rtype, "resource_name": name, "pattern_type": pattern,
                 "acls": [{"principal": a.principal, "host": a.host, "operation": a.operation,
                           "permission_type": a.permission_type} for a in acls]}
                for (rtype, name, pattern), acls in resources.items()]}


def _failed(code: ErrorCode, message: str) -> dict[str, Any]:
    return {"throttle_time": 0, "error_code": code, "error_message": message,
            "resources": []}
