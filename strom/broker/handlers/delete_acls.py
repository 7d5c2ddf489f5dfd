"""DeleteAcls: remove the ACL bindings each filter matches.

Versions: 1-3. Needs ALTER on the cluster (else CLUSTER_AUTHORIZATION_FAILED
in every filter result) and an authorizer (else SECURITY_DISABLED), as
Kafka's AclApis. A filter with an UNKNOWN element fails alone with
INVALID_REQUEST. The removals of all filters are one metadata batch (Kafka's
controller applies them atomically); an ACL two filters match is removed
once and listed under both. A filter matching more than 10,000 ACLs fails
as Kafka's controller fails it. A broker that is not the controller
forwards the request (KIP-590) and answers once its image no longer has
the removed ACLs.
"""

from __future__ import annotations

from typing import Any

from strom.broker.context import RequestContext
from strom.broker.handlers.create_acls import refusal
from strom.broker.router import handles
from strom.cluster.image import AclRecord, MetadataImage, MetadataRecord, RemoveAclRecord
from strom.cluster.validation import MAX_RECORDS_PER_USER_OP
from strom.errors import ErrorCode, KafkaError
from strom.protocol.api import ApiKey
from strom.security.acl_filters import AclBindingFilter, matching
from strom.security.acl_types import AclOperation


def _filter(f: Any) -> AclBindingFilter:
    return AclBindingFilter(int(f.resource_type_filter), f.resource_name_filter,
                            int(f.pattern_type_filter), f.principal_filter, f.host_filter,
                            int(f.operation), int(f.permission_type))


@handles(ApiKey.DELETE_ACLS)
async def handle(ctx: RequestContext, request: Any) -> Any:
    refused = refusal(ctx, AclOperation.ALTER)
    if refused is not None:
        return _all_failed(request, *refused)
    forwarder = ctx.broker.forwarder
    if forwarder is not None and forwarder.should_forward(ctx):
        return await forwarder.forward(ctx, request, _delete, _settled)
    return await _delete(ctx, request)


async def _delete(ctx: RequestContext, request: Any) -> dict[str, Any]:
    filters = [_filter(f) for f in request.filters]
    results: list[dict[str, Any]] = []

    def records(image: MetadataImage) -> list[MetadataRecord]:
        # Runs again on a newer image if the batch went stale: results too.
        results.clear()
        removed: dict[AclRecord, None] = {}
        for wanted in filters:
            error = wanted.error()
            if error is not None:
                results.append(_result(ErrorCode.invalid_request, error, []))
                continue
            found = matching(image.acls, wanted)
            if len(removed) + len(found) > MAX_RECORDS_PER_USER_OP:
                # Kafka's BoundedListTooLongException, an unexpected error to its ApiError.
                results.append(_result(
                    ErrorCode.unknown_server_error,
                    f"Cannot remove more than {MAX_RECORDS_PER_USER_OP} acls in a single "
                    "delete operation.", []))
                continue
            removed.update(dict.fromkeys(found))
            results.append(_result(ErrorCode.none, None, found))
        return [RemoveAclRecord(acl.resource_type, acl.resource_name, acl.pattern_type,
                                acl.principal, acl.host, acl.operation, acl.permission_type)
                for acl in removed]

    try:
        await ctx.broker.metadata.submit(lambda: records(ctx.broker.metadata.image))
    except KafkaError as exc:
        return _all_failed(request, exc.code, exc.message)
    return {"throttle_time": 0, "filter_results": results}


def _result(code: ErrorCode, message: str | None, acls: list[AclRecord]) -> dict[str, Any]:
    return {"error_code": code, "error_message": message, "matching_acls": [
        {"error_code": ErrorCode.none, "error_message": None,
         "resource_type": a.resource_type, "resource_name": a.resource_name,
         "pattern_type": a.pattern_type, "principal": a.principal, "host": a.host,
         "operation": a.operation, "permission_type": a.permission_type} for a in acls]}


def _all_failed(request: Any, code: ErrorCode, message: str | None) -> dict[str, Any]:
    return {"throttle_time": 0, "filter_results": [
        _result(code, message, []) for _ in request.filters]}


def _settled(request: Any, response: Any) -> Any:
    """What this broker's image must show before it relays the controller's
    answer: none of the removed ACLs."""
    removed = [AclRecord(int(m.resource_type), m.resource_name, int(m.pattern_type),
                         m.principal, m.host, int(m.operation), int(m.permission_type))
               for r in response.filter_results for m in r.matching_acls]
    if not removed:
        return None
    return lambda image: not any(acl in image.acls for acl in removed)
