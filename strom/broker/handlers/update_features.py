"""UpdateFeatures: an operator finalizes a feature level (kafka-features.sh
upgrade, `strom cluster features upgrade`, Admin.updateFeatures).

Versions: 0-2 (v0 allow_downgrade, v1 upgrade_type, v2 no per-feature results:
the first failure is the request's error). A controller API: another broker
forwards it (broker/forwarding.py). The rules and messages are Kafka's
(cluster/features.py); every update is applied or none; validate_only checks
and writes nothing.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import cluster_allowed
from strom.broker.context import RequestContext
from strom.broker.forwarding import forwarded_to_controller
from strom.broker.router import handles
from strom.cluster import features
from strom.cluster.image import MetadataRecord
from strom.errors import ErrorCode, KafkaError, NotControllerError
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation


@handles(ApiKey.UPDATE_FEATURES)
@forwarded_to_controller
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    broker = ctx.broker
    if not cluster_allowed(ctx, AclOperation.ALTER):
        denied = ErrorCode.cluster_authorization_failed
        refused: dict[str, Any] = {"throttle_time": 0, "error_code": denied,
                                   "error_message": None}
        if ctx.api_version < 2:
            refused["results"] = [{"feature": u.feature, "error_code": denied,
                                   "error_message": None} for u in request.feature_updates]
        return refused
    updates = []
    for asked in request.feature_updates:
        upgrade_type = getattr(asked, "upgrade_type", None)
        if upgrade_type is None:  # v0: allow_downgrade
            upgrade_type = (features.SAFE_DOWNGRADE if asked.allow_downgrade
                            else features.UPGRADE)
        updates.append((str(asked.feature), int(asked.max_version_level), int(upgrade_type)))
    validate_only = bool(getattr(request, "validate_only", False))
    # Rebuilt each time the operation runs (again, on a newer image, if stale).
    results: list[features.FeatureResult] = []

    def update() -> list[MetadataRecord]:
        answers, records = features.update_records(broker.metadata.image,
                                                   broker.metadata.node_id, updates)
        results[:] = answers
        return [] if validate_only else records

    failed: features.FeatureResult | None = None
    try:
        if broker.image.controller_id != broker.metadata.node_id:
            raise NotControllerError(f"broker {broker.metadata.node_id} is not the controller")
        await broker.metadata.submit(update)
    except KafkaError as exc:
        # The request failed as a whole (Kafka's createWithErrors): NOT_CONTROLLER
        # here is what the forwarding broker retries on.
        results[:] = [features.FeatureResult(f, exc.code, exc.message) for f, _, _ in updates]
        failed = features.FeatureResult("", exc.code, exc.message)
    response: dict[str, Any] = {
        "throttle_time": 0,
        "error_code": ErrorCode.none if failed is None else failed.error_code,
        "error_message": None if failed is None else failed.error_message,
        "results": [{"feature": r.feature, "error_code": r.error_code,
                     "error_message": r.error_message} for r in results]}
    if ctx.api_version >= 2:
        response.pop("results")
        failed = failed or next((r for r in results if r.error_code != ErrorCode.none), None)
        if failed is not None:
            response.update(error_code=failed.error_code, error_message=failed.error_message)
    return response
