"""ListPartitionReassignments: the partitions being reassigned
(kafka-reassign-partitions.sh --verify / --list, Admin.listPartitionReassignments).

Versions: 0. A controller API: another broker forwards it
(broker/forwarding.py), so the answer is the controller's newest image. Null
topics: every partition being reassigned; otherwise those of the named
partitions that are, with their replicas (target first, then the ones being
removed), adding and removing replicas. Unknown topics and partitions are
left out, as in Kafka.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import DENIED_MESSAGES, cluster_allowed
from strom.broker.context import RequestContext
from strom.broker.forwarding import error_response, forwarded_to_controller
from strom.broker.router import handles
from strom.cluster.reassignment import ongoing
from strom.errors import ErrorCode, NotControllerError
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation


@handles(ApiKey.LIST_PARTITION_REASSIGNMENTS)
@forwarded_to_controller
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    if not cluster_allowed(ctx, AclOperation.DESCRIBE):
        denied = ErrorCode.cluster_authorization_failed
        return error_response(ApiKey(ctx.header.api_key), request, denied,
                              DENIED_MESSAGES[denied])
    broker = ctx.broker
    image = broker.image
    if image.controller_id != broker.metadata.node_id:
        error = NotControllerError(f"broker {broker.metadata.node_id} is not the controller")
        return {"throttle_time": 0, "error_code": error.code, "error_message": error.message,
                "topics": []}
    asked = None if request.topics is None else [
        (t.name, [int(p) for p in t.partition_indexes]) for t in request.topics]
    return {"throttle_time": 0, "error_code": ErrorCode.none, "error_message": None,
            "topics": [
                {"name": name, "partitions": [
                    {"partition_index": p.partition, "replicas": list(p.replicas),
                     "adding_replicas": list(p.adding_replicas),
                     "removing_replicas": list(p.removing_replicas)} for p in partitions]}
                for name, partitions in ongoing(image, asked).items()]}

