"""DescribeCluster: the brokers, the controller and the cluster id.

Versions: 0-2. From v1 the client names the endpoint type it expects: a
broker answers 1 (brokers); 2 (controllers) gets MISMATCHED_ENDPOINT_TYPE
and any other value UNSUPPORTED_ENDPOINT_TYPE (INVALID_REQUEST in v0), with
Kafka's messages. The controller id is this broker (a cluster of one is its
own controller). cluster_authorized_operations is sent when asked for: with
no authorizer, every cluster operation. No broker is ever fenced, so v2's
include_fenced_brokers changes nothing.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import cluster_operations_if
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey

BROKERS, CONTROLLERS = 1, 2
_ENDPOINT_NAMES = {BROKERS: "BROKER", CONTROLLERS: "CONTROLLER"}
AUTHORIZED_OPERATIONS_OMITTED = -(2**31)
# ALTER, DESCRIBE, CREATE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS,
# IDEMPOTENT_WRITE: Kafka's operations on the CLUSTER resource.
ALL_CLUSTER_OPERATIONS = sum(1 << op for op in (5, 7, 8, 9, 10, 11, 12))


@handles(ApiKey.DESCRIBE_CLUSTER)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    image = ctx.broker.image
    endpoint_type = getattr(request, "endpoint_type", BROKERS)
    response: dict[str, Any] = {
        "throttle_time": 0, "error_code": ErrorCode.none, "error_message": None,
        "endpoint_type": BROKERS, "cluster_id": image.cluster_id, "controller_id": -1,
        "brokers": [], "cluster_authorized_operations": AUTHORIZED_OPERATIONS_OMITTED,
    }
    if endpoint_type not in _ENDPOINT_NAMES:
        response.update(
            error_code=(ErrorCode.invalid_request if ctx.api_version == 0
                        else ErrorCode.unsupported_endpoint_type),
            error_message=f"Unsupported endpoint type {endpoint_type}",
        )
        return response
    if endpoint_type != BROKERS:
        response.update(
            error_code=(ErrorCode.invalid_request if ctx.api_version == 0
                        else ErrorCode.mismatched_endpoint_type),
            error_message="The request was sent to an endpoint of type BROKER, but we "
                          f"wanted an endpoint of type {_ENDPOINT_NAMES[endpoint_type]}",
        )
        return response
    # KIP-430: 0 without DESCRIBE on the cluster, else what the principal may do.
    response["cluster_authorized_operations"] = cluster_operations_if(
        ctx, bool(request.include_cluster_authorized_operations))
    response.update(
        endpoint_type=endpoint_type, controller_id=image.controller_id,
        # Each broker's endpoint on the listener this client came in on
        # (Kafka leaves out the brokers without one).
        brokers=[{"broker_id": b.node_id, "host": address[0], "port": address[1],
                  "rack": b.rack, "is_fenced": False}
                 for b in sorted(image.brokers.values(), key=lambda b: b.node_id)
                 if (address := b.endpoint(ctx.listener_name)) is not None],
    )
    return response
