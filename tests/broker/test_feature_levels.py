"""The features strom reports (ApiVersions) and UpdateFeatures on them:
Kafka 4.4's feature names at the levels strom implements (cluster/features.py)."""

from __future__ import annotations

from typing import Any

import pytest

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.testing import EmbeddedBroker
from tests.broker.raw_client import RawClient

AT_ZERO = ("eligible.leader.replicas.version", "kraft.version")


def _api_versions(broker: EmbeddedBroker, version: int) -> Any:
    with RawClient(broker.bootstrap) as client:
        return client.send(ApiKey.API_VERSIONS, version, {"client_software_name": "t",
                                                          "client_software_version": "1"})


def test_v4_lists_every_feature_with_its_levels(broker: EmbeddedBroker) -> None:
    response = _api_versions(broker, 4)
    supported = {f.name: (f.min_version, f.max_version) for f in response.supported_features}
    finalized = {f.name: (f.min_version_level, f.max_version_level)
                 for f in response.finalized_features}
    assert supported == {"metadata.version": (7, 12), "transaction.version": (0, 2),
                         "group.version": (0, 1), "streams.version": (0, 1),
                         "share.version": (0, 1), **{f: (0, 0) for f in AT_ZERO}}
    # A feature at level 0 is not finalized (Kafka keeps no record of it).
    assert finalized == {"metadata.version": (12, 12), "transaction.version": (2, 2),
                         "group.version": (1, 1), "streams.version": (1, 1),
                         "share.version": (1, 1)}


def test_v3_leaves_out_features_whose_minimum_is_0(broker: EmbeddedBroker) -> None:
    # KAFKA-17492: clients before v4 may not read a range starting at 0.
    response = _api_versions(broker, 3)
    assert [f.name for f in response.supported_features] == ["metadata.version"]
    assert {f.name for f in response.finalized_features} == {
        "metadata.version", "transaction.version", "group.version", "streams.version",
        "share.version"}


@pytest.mark.parametrize(("feature", "level", "upgrade_type", "message"), [
    ("share.version", 1, 1, None),
    ("kraft.version", 0, 1, None),
    ("share.version", 2, 1, "Local controller {node} only supports versions [0-1]"),
    ("share.version", 0, 2, "strom finalizes share.version 1 and cannot change it."),
    ("streams.version", 1, 1, None),
    ("group.version", 1, 1, None),
    ("group.version", 0, 2, "strom finalizes group.version 1 and cannot change it."),
    ("group.version", 0, 1, "Can't downgrade the version of this feature without setting the "
                            "upgrade type to either safe or unsafe downgrade."),
    ("no.such.version", 1, 1, "Local controller {node} does not support this feature."),
])
def test_update_features(broker: EmbeddedBroker, feature: str, level: int, upgrade_type: int,
                         message: str | None) -> None:
    node = broker.services.node_id
    with RawClient(broker.bootstrap) as client:
        response = client.send(ApiKey.UPDATE_FEATURES, 1, {
            "timeout": 30_000, "validate_only": False, "feature_updates": [
                {"feature": feature, "max_version_level": level, "upgrade_type": upgrade_type}]})
    (result,) = response.results
    if message is None:
        assert (result.error_code, result.error_message) == (ErrorCode.none, None)
    else:
        assert result.error_code == ErrorCode.invalid_update_version
        assert result.error_message == (f"Invalid update version {level} for feature "
                                        f"{feature}. " + message.format(node=node))
