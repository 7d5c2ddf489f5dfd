"""Finalized features: what this strom supports, what the image finalized,
and the controller's UpdateFeatures (Kafka's FeatureControlManager rules and
messages, for the features strom has).

- metadata.version (cluster/metadata_version.py): raised one step or many,
  only to a level the controller and every registered broker support (a
  registration without a range is a strom from before it: the minimum
  only); never lowered: the records of the higher level stay in the
  metadata, and an older strom could not read them (Kafka refuses a safe
  downgrade that would lose metadata and no longer offers an unsafe one).
  A broker that holds replicas but is not registered (down) refuses it too.
- transaction.version: strom finalizes 2 (KIP-890 part 2) and cannot change it.
- streams.version: 1 (KIP-1071's streams rebalance protocol, served by
  StreamsGroupHeartbeat/StreamsGroupDescribe), finalized and fixed.
- group.version: 1 (KIP-848's consumer rebalance protocol, served by
  ConsumerGroupHeartbeat/ConsumerGroupDescribe), finalized and fixed: strom
  has no way to switch the protocol off.
- share.version: 1 (KIP-932 share groups: ShareGroupHeartbeat/Describe,
  ShareFetch, ShareAcknowledge, the share coordinator), finalized and fixed.
  Kafka 4.4's level 2 adds share-group dead-letter queues (KIP-1191), which
  strom does not have.
- eligible.leader.replicas.version,
  kraft.version: supported at 0 only, since strom has no eligible leader replicas
  (KIP-966) and no KRaft quorum whose voters could change (KIP-853: etcd's
  members are the quorum, docs/cluster.md "The metadata quorum"). A level 0
  is not finalized (Kafka keeps no record of a feature at 0), so ApiVersions
  lists them as supported only; an update to 0 is accepted, above it refused
  with Kafka's "only supports versions [0-0]".

An update to the current level is accepted and writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from strom.cluster import metadata_version
from strom.cluster.image import FeatureLevelRecord, MetadataImage, MetadataRecord
from strom.errors import ErrorCode

TRANSACTION_VERSION = "transaction.version"
GROUP_VERSION = "group.version"
# Features whose level strom fixes: min supported, max supported, finalized
# (Kafka 4.4's levels; server-common Feature.java).
_FIXED = {
    TRANSACTION_VERSION: (0, 2, 2),
    GROUP_VERSION: (0, 1, 1),
    "share.version": (0, 1, 1),
    "streams.version": (0, 1, 1),
    "eligible.leader.replicas.version": (0, 0, 0),
    "kraft.version": (0, 0, 0),
}

# Kafka's FeatureUpdate.UpgradeType codes (UpdateFeatures v1+).
UPGRADE, SAFE_DOWNGRADE, UNSAFE_DOWNGRADE = 1, 2, 3


def supported() -> dict[str, tuple[int, int]]:
    """Feature name -> the (min, max) levels this broker supports."""
    return {**{name: (low, high) for name, (low, high, _) in _FIXED.items()},
            metadata_version.FEATURE_NAME: (metadata_version.MINIMUM, metadata_version.LATEST)}


def finalized(image: MetadataImage) -> dict[str, int]:
    """The finalized levels above 0 (a feature at 0 is not finalized)."""
    return {**{name: level for name, (_, _, level) in _FIXED.items() if level > 0},
            metadata_version.FEATURE_NAME: image.metadata_version}


def finalized_epoch(image: MetadataImage) -> int:
    """ApiVersions' finalized_features_epoch: clients keep the features of the
    highest epoch they have seen. Equal on every broker with the same level
    (and 1, as before metadata.version, at its minimum), higher after every
    upgrade: levels are never lowered."""
    return image.metadata_version - metadata_version.MINIMUM + 1


def bootstrap_level(image: MetadataImage) -> int:
    """The metadata.version of a new cluster's first batch: the newest, unless
    a registered broker (an older strom started with it) supports less."""
    return min([metadata_version.LATEST] + [b.metadata_versions[1]
                                            for b in image.brokers.values()
                                            if b.metadata_versions is not None])


@dataclass(frozen=True, slots=True)
class FeatureResult:
    feature: str
    error_code: ErrorCode = ErrorCode.none
    error_message: str | None = None


def update_records(image: MetadataImage, node_id: int,
                   updates: Sequence[tuple[str, int, int]]
                   ) -> tuple[list[FeatureResult], list[MetadataRecord]]:
    """`updates`: (feature, level, upgrade type). The result of each, and the
    records to commit: none unless every update is valid (Kafka applies an
    UpdateFeatures atomically)."""
    results: list[FeatureResult] = []
    records: list[MetadataRecord] = []
    for feature, level, upgrade_type in updates:
        reason = _refusal(image, node_id, feature, level, upgrade_type)
        if reason is not None:
            results.append(FeatureResult(
                feature, ErrorCode.invalid_update_version,
                f"Invalid update version {level} for feature {feature}. {reason}"))
            continue
        results.append(FeatureResult(feature))
        if feature == metadata_version.FEATURE_NAME and level != image.metadata_version:
            records.append(FeatureLevelRecord(feature, level))
    if any(r.error_code != ErrorCode.none for r in results):
        return results, []
    return results, records


def _refusal(image: MetadataImage, node_id: int, feature: str, level: int,
             upgrade_type: int) -> str | None:
    if upgrade_type not in (UPGRADE, SAFE_DOWNGRADE, UNSAFE_DOWNGRADE):
        return "The controller does not support the given upgrade type."
    if level < 0:
        return "A feature version cannot be less than 0."
    ranges = supported()
    if feature not in ranges:
        return f"Local controller {node_id} does not support this feature."
    low, high = ranges[feature]
    if not low <= level <= high:
        return f"Local controller {node_id} only supports versions [{low}-{high}]"
    current = finalized(image).get(feature, 0)
    if level < current and upgrade_type == UPGRADE:
        return ("Can't downgrade the version of this feature without setting the upgrade "
                "type to either safe or unsafe downgrade.")
    if level > current and upgrade_type != UPGRADE:
        return "Can't downgrade to a newer version."
    if level == current:
        return None
    if feature in _FIXED:
        return f"strom finalizes {feature} {current} and cannot change it."
    if level < current:
        return (f"Refusing to downgrade {feature} from {current}: the metadata may hold "
                "records an older strom cannot read.")
    for broker in sorted(image.brokers.values(), key=lambda b: b.node_id):
        b_low, b_high = broker.metadata_versions or (low, high)
        if not b_low <= level <= b_high:
            return f"Broker {broker.node_id} only supports versions [{b_low}-{b_high}]"
    # Kafka keeps an offline broker's registration (fenced) and checks it;
    # strom's goes with its etcd lease, so a broker holding replicas but
    # not registered is one whose version is unknown.
    absent = sorted({r for t in image.topics.values() for p in t.partitions
                     for r in p.replicas} - set(image.brokers))
    if absent:
        return (f"Broker {absent[0]} holds replicas but is not registered: its supported "
                "versions are unknown; start it, or move its replicas away, first.")
    return None
