"""The values strom writes to etcd: JSON, the same record form as the
single node's strom-metadata.json (`record_to_json` / `record_from_json`).

    metadata batch:  {"version": 1, "records": [<record>, ...]}
    registration:    {"version": 1, "node_id": int, "host": str, "port": int, "rack": str|null,
                      "fenced": bool (absent: false; registrations before it have none),
                      "features": {"metadata.version": [min, max]} (the levels the broker
                      supports; absent: a strom from before metadata.version, which
                      supports only its minimum, cluster/metadata_version.py),
                      "endpoints": [[listener, host, port, security protocol], ...]
                      (every advertised listener; absent: host and port only)}

A registration carries no broker epoch: the epoch is the key's create
revision, which etcd keeps while the broker re-puts its registration (to
mark it fenced) and which changes with every new session.
    candidate:       {"version": 1, "node_id": int}

A batch whose JSON is larger than COMPRESS_ABOVE is stored as b"z" + zlib of
the JSON (JSON itself never starts with "z"): etcd refuses requests above
1.5 MiB by default (--max-request-bytes), and a CreateTopics of 8,000
partitions is about 1.2 MB of PartitionRecords, which compress about 15-fold.

A later version must read version 1; a reader meeting a newer version raises
CodecError naming it, so an old broker never applies what it cannot read.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from typing import Any

from strom.cluster import metadata_version
from strom.cluster.image import (
    BrokerInfo,
    Endpoint,
    MetadataRecord,
    record_from_json,
    record_to_json,
)

FORMAT_VERSION = 1
COMPRESS_ABOVE = 64 * 1024
_ZLIB_MARK = b"z"


class CodecError(Exception):
    """A value in etcd that this strom cannot read."""


def _load(value: bytes, what: str) -> dict[str, Any]:
    if value.startswith(_ZLIB_MARK):
        try:
            value = zlib.decompress(value[1:])
        except zlib.error as exc:
            raise CodecError(f"{what}: bad compressed value ({exc})") from None
    try:
        data = json.loads(value)
    except ValueError as exc:
        raise CodecError(f"{what}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CodecError(f"{what}: not a JSON object")
    version = data.get("version")
    if not isinstance(version, int) or version < 1:
        raise CodecError(f"{what}: no format version")
    if version > FORMAT_VERSION:
        raise CodecError(f"{what}: written by a newer strom (format version {version}, this "
                         f"one reads {FORMAT_VERSION})")
    return data


def encode_batch(records: Sequence[MetadataRecord]) -> bytes:
    payload = json.dumps({"version": FORMAT_VERSION,
                          "records": [record_to_json(r) for r in records]},
                         separators=(",", ":")).encode()
    if len(payload) > COMPRESS_ABOVE:
        return _ZLIB_MARK + zlib.compress(payload, 6)
    return payload


def decode_batch(value: bytes) -> list[MetadataRecord]:
    data = _load(value, "metadata batch")
    records = data.get("records")
    if not isinstance(records, list):
        raise CodecError("metadata batch: no records")
    try:
        return [record_from_json(r) for r in records]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CodecError(f"metadata batch: bad record ({exc!r})") from None


def encode_registration(broker: BrokerInfo) -> bytes:
    data: dict[str, Any] = {"version": FORMAT_VERSION, "node_id": broker.node_id,
                            "host": broker.host, "port": broker.port, "rack": broker.rack}
    if broker.fenced:
        data["fenced"] = True
    if broker.endpoints:
        # Every advertised listener; host and port stay the first one's, which
        # is all a strom from before several listeners reads.
        data["endpoints"] = [[e.listener, e.host, e.port, e.security_protocol]
                             for e in broker.endpoints]
    # Readers ignore fields they do not know: older strom read this as before.
    low, high = broker.metadata_versions or (metadata_version.MINIMUM, metadata_version.LATEST)
    data["features"] = {metadata_version.FEATURE_NAME: [low, high]}
    return json.dumps(data).encode()


def decode_registration(value: bytes, epoch: int = -1) -> BrokerInfo:
    """The registration in `value`; `epoch` is its key's create revision."""
    data = _load(value, "broker registration")
    node_id, host, port, rack = (data.get(k) for k in ("node_id", "host", "port", "rack"))
    fenced = data.get("fenced", False)
    if not (isinstance(node_id, int) and isinstance(host, str) and isinstance(port, int)
            and (rack is None or isinstance(rack, str)) and isinstance(fenced, bool)):
        raise CodecError(f"broker registration: bad fields {data!r}")
    return BrokerInfo(node_id, host, port, rack, epoch, fenced, _supported(data),
                      _endpoints(data))


def _endpoints(data: dict[str, Any]) -> tuple[Endpoint, ...]:
    raw = data.get("endpoints", [])
    if not (isinstance(raw, list) and all(
            isinstance(e, list) and len(e) == 4 and isinstance(e[0], str)
            and isinstance(e[1], str) and isinstance(e[2], int) and isinstance(e[3], str)
            for e in raw)):
        raise CodecError(f"broker registration: bad endpoints {raw!r}")
    return tuple(Endpoint(*e) for e in raw)


def _supported(data: dict[str, Any]) -> tuple[int, int]:
    features = data.get("features")
    levels = features.get(metadata_version.FEATURE_NAME) if isinstance(features, dict) else None
    if (isinstance(levels, list) and len(levels) == 2
            and all(isinstance(v, int) for v in levels) and levels[0] <= levels[1]):
        return levels[0], levels[1]
    return metadata_version.MINIMUM, metadata_version.MINIMUM


def encode_candidate(node_id: int) -> bytes:
    return json.dumps({"version": FORMAT_VERSION, "node_id": node_id}).encode()


def decode_candidate(value: bytes) -> int:
    node_id = _load(value, "controller candidate").get("node_id")
    if not isinstance(node_id, int):
        raise CodecError("controller candidate: no node_id")
    return node_id
