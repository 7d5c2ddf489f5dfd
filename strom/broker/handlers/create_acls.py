"""CreateAcls: add ACL bindings to the cluster's metadata.

Versions: 1-3 (Kafka 4 removed v0). Without an authorizer every creation
fails with SECURITY_DISABLED; without ALTER on the cluster, with
CLUSTER_AUTHORIZATION_FAILED (Kafka's AclApis). Each creation is checked
alone (strom/security/acl_filters.creation_error: INVALID_REQUEST for
unknown or ANY types, ANY/MATCH pattern types, an empty name, a cluster not
named kafka-cluster); the valid ones are written in one metadata batch,
those already present are not written again and succeed. A broker that is
not the controller forwards the request (KIP-590) and answers once its own
image has the new ACLs, so an authorization right after it here sees them.
"""

from __future__ import annotations

from typing import Any

from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.cluster.image import AclRecord, MetadataImage, MetadataRecord
from strom.cluster.validation import check_records_per_user_op
from strom.errors import ErrorCode, KafkaError
from strom.protocol.api import ApiKey
from strom.security.acl_filters import creation_error
from strom.security.acl_types import CLUSTER_NAME, AclOperation, ResourceType


def refusal(ctx: RequestContext, operation: AclOperation) -> tuple[ErrorCode, str] | None:
    """Why an ACL API is refused as a whole (Kafka's AclApis, in its order:
    cluster authorization first, then whether an authorizer exists)."""
    if not ctx.authorize(operation, ResourceType.CLUSTER, CLUSTER_NAME):
        return (ErrorCode.cluster_authorization_failed,
                "Cluster authorization failed.")
    if not ctx.broker.authorizer.enabled:
        return ErrorCode.security_disabled, "No Authorizer is configured."
    return None


def binding(creation: Any) -> AclRecord:
    return AclRecord(int(creation.resource_type), creation.resource_name,
                     int(creation.resource_pattern_type), creation.principal, creation.host,
                     int(creation.operation), int(creation.permission_type))


@handles(ApiKey.CREATE_ACLS)
async def handle(ctx: RequestContext, request: Any) -> Any:
    refused = refusal(ctx, AclOperation.ALTER)
    if refused is not None:
        code, message = refused
        return _all_failed(request, code, message)
    forwarder = ctx.broker.forwarder
    if forwarder is not None and forwarder.should_forward(ctx):
        return await forwarder.forward(ctx, request, _create, _settled)
    return await _create(ctx, request)


async def _create(ctx: RequestContext, request: Any) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    wanted: list[AclRecord] = []
    for creation in request.creations:
        acl = binding(creation)
        error = creation_error(acl)
        if error is None:
            wanted.append(acl)
            results.append({"error_code": ErrorCode.none, "error_message": None})
        else:
            results.append({"error_code": ErrorCode.invalid_request, "error_message": error})

    def records(image: MetadataImage) -> list[MetadataRecord]:
        new: list[MetadataRecord] = list(dict.fromkeys(
            acl for acl in wanted if acl not in image.acls))
        check_records_per_user_op(len(new))
        return new

    if wanted:
        try:
            await ctx.broker.metadata.submit(lambda: records(ctx.broker.metadata.image))
        except KafkaError as exc:
            return _all_failed(request, exc.code, exc.message)
    return {"throttle_time": 0, "results": results}


def _all_failed(request: Any, code: ErrorCode, message: str | None) -> dict[str, Any]:
    return {"throttle_time": 0, "results": [
        {"error_code": code, "error_message": message} for _ in request.creations]}


def _settled(request: Any, response: Any) -> Any:
    """What this broker's image must show before it relays the controller's
    answer: every ACL created."""
    created = [binding(c) for c, r in zip(request.creations, response.results, strict=False)
               if r.error_code == ErrorCode.none]
    if not created:
        return None
    return lambda image: all(acl in image.acls for acl in created)
