"""ApiVersions: the version range of every API this broker handles.

Versions: 0-4. Built from the handler registry, so what is advertised is
what is implemented. A request newer than v4 is answered in v0 with
UNSUPPORTED_VERSION (see connection.py), which clients use to downgrade.
"""

from __future__ import annotations

from typing import Any

from strom.broker.context import RequestContext
from strom.broker.router import REGISTRY, handles
from strom.cluster import features
from strom.cluster.image import MetadataImage
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.protocol.messages import encode_response


def _api_keys() -> list[dict[str, int]]:
    return [
        {"api_key": r.api_key,
         "min_version": r.min_version if r.advertised_min_version is None
         else r.advertised_min_version,
         "max_version": r.max_version}
        for r in sorted(REGISTRY.values(), key=lambda r: r.api_key) if r.advertised
    ]


# Features (v3+), as Kafka reports them (cluster/features.py): Kafka 4.x clients
# use transaction.version 2 (KIP-890 part 2, docs/transactions.md) when it is
# finalized; metadata.version gates the metadata record types (docs/cluster.md).
# Below v4 a supported feature whose minimum is 0 is left out, as Kafka does
# (KAFKA-17492: older clients fail to read a range starting at 0).
def _features(image: MetadataImage, version: int) -> dict[str, Any]:
    return {
        "supported_features": [{"name": n, "min_version": lo, "max_version": hi}
                               for n, (lo, hi) in features.supported().items()
                               if lo > 0 or version >= 4],
        "finalized_features_epoch": features.finalized_epoch(image),
        "finalized_features": [{"name": n, "min_version_level": level,
                                "max_version_level": level}
                               for n, level in features.finalized(image).items()],
    }


@handles(ApiKey.API_VERSIONS)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    return {"error_code": ErrorCode.none, "api_keys": _api_keys(), "throttle_time": 0,
            **_features(ctx.broker.image, ctx.api_version)}


def fallback_response(correlation_id: int) -> bytes:
    """The v0 response to an ApiVersions request of a version we do not know."""
    return encode_response(
        ApiKey.API_VERSIONS, 0, correlation_id,
        {"error_code": ErrorCode.unsupported_version, "api_keys": _api_keys(),
         "throttle_time": 0},
    )
