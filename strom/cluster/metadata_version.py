"""metadata.version: which metadata record types the cluster may write.

Kafka's finalized feature (KIP-584, KIP-778): every broker advertises the
range of levels it supports; the finalized level lives in the metadata;
records a level introduced are written only once it is finalized, and it is
raised only when every registered broker supports it (UpdateFeatures,
`kafka-features.sh upgrade`). A broker of an older strom never meets a
record it cannot read: it would drop the whole batch (etcd_codec.CodecError)
and its image would silently diverge from its peers'.

strom uses Kafka's level numbers where the record sets correspond, so that
`kafka-features.sh upgrade --metadata 3.5` means what it says:

    7   3.3-IV3  Kafka 4.x's minimum; strom before this module (no level in its
                 metadata, no range in its registrations): topics, partitions,
                 configs, producer ids
    11  3.5-IV2  SCRAM credentials (Kafka's isScramSupported), and in strom also
                 ACLs and client quotas, whose records older strom cannot read
    12  3.6-IV0  per-group configs (KIP-848's consumer.session.timeout.ms, ...;
                 GroupConfigRecord). Kafka writes them as ConfigRecords of
                 resource type GROUP from 4.0; strom gives them the next level
                 after its own last, since only the record set matters here

Levels 8-10 are accepted and behave as 7. A new cluster (its first metadata
batch) and a new single node start at LATEST, as Kafka's format does.

A leaf module: image.py and the stores import it; record types are named by
their class name (the "type" of their JSON).
"""

from __future__ import annotations

from collections.abc import Iterable

from strom.errors import UnsupportedVersionError

FEATURE_NAME = "metadata.version"
MINIMUM = 7
SECURITY_RECORDS = 11
GROUP_CONFIGS = 12
LATEST = GROUP_CONFIGS

_RELEASES = {7: "3.3-IV3", 8: "3.4-IV0", 9: "3.5-IV0", 10: "3.5-IV1", 11: "3.5-IV2",
             12: "3.6-IV0"}

#: Record type -> the level that introduced it; types absent are readable by all.
INTRODUCED_AT = {
    "ScramCredentialRecord": SECURITY_RECORDS,
    "RemoveScramCredentialRecord": SECURITY_RECORDS,
    "AclRecord": SECURITY_RECORDS,
    "RemoveAclRecord": SECURITY_RECORDS,
    "ClientQuotaRecord": SECURITY_RECORDS,
    "GroupConfigRecord": GROUP_CONFIGS,
}


def release(level: int) -> str:
    """Kafka's name of a level, e.g. 3.5-IV2."""
    return _RELEASES.get(level, f"level {level}")


def check_records(level: int, records: Iterable[object]) -> None:
    """Refuse (UNSUPPORTED_VERSION, as Kafka's controller answers a SCRAM
    change below 3.5-IV2) a batch holding a record type the finalized `level`
    does not allow. A FeatureLevelRecord for metadata.version earlier in the
    batch counts: the first batch of a new cluster begins with one."""
    for record in records:
        name = type(record).__name__
        if name == "FeatureLevelRecord" and getattr(record, "name", None) == FEATURE_NAME:
            level = int(getattr(record, "level"))  # noqa: B009 (a leaf: no import of image)
            continue
        needed = INTRODUCED_AT.get(name, MINIMUM)
        if needed > level:
            raise UnsupportedVersionError(
                f"The current metadata.version ({release(level)}) does not support "
                f"{name}; once every broker runs a strom that supports {release(needed)}, "
                f"upgrade it: strom cluster features upgrade --metadata "
                f"{release(needed).split('-')[0]}")
