"""Snapshots of the metadata log in etcd, so the log does not grow forever.

Kafka's controller writes a snapshot of its metadata image every
`metadata.log.max.record.bytes.between.snapshots` (20 MiB) of new records and
then drops the log before it; strom's controller does the same with the
`metadata/log/<seq>` batches in etcd:

    metadata/snapshot/<seq, 20 digits>/<part, 6 digits>  the image after batch seq, as the
                                                         records that rebuild it, in parts
    metadata/snapshot/<seq, 20 digits>                   the manifest: {"version": 1, "parts": n}

The parts are written first (plain puts: an image of many partitions is larger
than one etcd request may be, 1.5 MiB by default); then one transaction,
guarded as a batch write is (the controller's own candidate key), writes the
manifest and deletes every batch before `seq` and every older snapshot. A
snapshot without its manifest is never read (a controller deposed half-way);
the next snapshot's deletion removes its parts.

Batch `seq` itself is kept: the controller's next batch write compares the
create revision of the batch before it (etcd_store.write_batch), so a new
controller whose image lags behind a snapshot cannot write over a deleted
batch number; it catches up first.

Loading: the newest snapshot with its manifest and all its parts, then every
batch after it. A broker following the watch sees the deletions as DELETE
events, which change nothing; one that must read everything anew (etcd
compacted the revisions it needed) loads the snapshot.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from strom.cluster.etcd_client import CreatedAt, DeleteRange, EtcdClient, KeyValue, Put
from strom.cluster.etcd_codec import CodecError, decode_batch, encode_batch
from strom.cluster.etcd_keys import ClusterKeys
from strom.cluster.etcd_session import Candidacy
from strom.cluster.image import MetadataImage, MetadataRecord, image_to_records

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: Records per part: about 0.75 MB of JSON, well under etcd's request limit
#: once compressed (etcd_codec compresses parts above 64 KiB).
RECORDS_PER_PART = 5000
_SNAPSHOT = "metadata/snapshot/"


def snapshot_prefix(keys: ClusterKeys) -> str:
    return f"{keys.prefix}{_SNAPSHOT}"


def manifest_key(keys: ClusterKeys, seq: int) -> str:
    return f"{snapshot_prefix(keys)}{seq:020d}"


def part_key(keys: ClusterKeys, seq: int, part: int) -> str:
    return f"{manifest_key(keys, seq)}/{part:06d}"


@dataclass(frozen=True, slots=True)
class SnapshotKey:
    seq: int
    part: int | None  # None: the manifest


def parse_snapshot_key(keys: ClusterKeys, key: str) -> SnapshotKey | None:
    prefix = snapshot_prefix(keys)
    if not key.startswith(prefix):
        return None
    seq_text, _, part_text = key[len(prefix):].partition("/")
    if not seq_text.isdigit() or (part_text and not part_text.isdigit()):
        return None
    return SnapshotKey(int(seq_text), int(part_text) if part_text else None)


async def write_snapshot(client: EtcdClient, keys: ClusterKeys, candidacy: Candidacy,
                         seq: int, image: MetadataImage) -> bool:
    """Snapshot `image` (the image after batch `seq`) and drop what it
    replaces; False if this broker is no longer the controller. EtcdError
    passes: a snapshot is retried at the next batch."""
    records = image_to_records(image)
    parts = [records[i:i + RECORDS_PER_PART]
             for i in range(0, len(records), RECORDS_PER_PART)] or [[]]
    for index, part in enumerate(parts):
        await client.put(part_key(keys, seq, index), encode_batch(part))
    manifest = json.dumps({"version": FORMAT_VERSION, "parts": len(parts)}).encode()
    log_prefix = keys.metadata_log(0)[:-20]
    result = await client.txn(
        [CreatedAt(candidacy.key, candidacy.create_revision),
         CreatedAt(keys.metadata_log(seq + 1), 0)],
        [Put(manifest_key(keys, seq), manifest)],
        deletes=[DeleteRange(log_prefix, keys.metadata_log(seq)),
                 DeleteRange(snapshot_prefix(keys), manifest_key(keys, seq))])
    return result.succeeded


@dataclass(frozen=True, slots=True)
class Replayed:
    image: MetadataImage
    last_batch: int
    #: The create revision of the last batch's key (0: not there).
    last_batch_revision: int
    #: The size of the batches after the snapshot (all of them without one).
    bytes_since_snapshot: int


def replay(keys: ClusterKeys, image: MetadataImage, batches: Sequence[tuple[int, KeyValue]],
           others: Sequence[KeyValue]) -> Replayed:
    """`image` (empty but for its cluster) after the newest complete snapshot
    among `others` (keys of the cluster that are not registrations,
    candidates or batches) and the batches after it."""
    manifests: dict[int, int] = {}
    parts: dict[int, dict[int, KeyValue]] = {}
    for kv in others:
        parsed = parse_snapshot_key(keys, kv.key)
        if parsed is None:
            continue
        if parsed.part is None:
            try:
                data = json.loads(kv.value)
                count = data["parts"]
                if data["version"] > FORMAT_VERSION or not isinstance(count, int):
                    raise ValueError(f"unreadable manifest {data!r}")
            except (ValueError, KeyError, TypeError) as exc:
                log.error("ignoring metadata snapshot %d: %s", parsed.seq, exc)
                continue
            manifests[parsed.seq] = count
        else:
            parts.setdefault(parsed.seq, {})[parsed.part] = kv
    last_batch, last_revision = 0, 0
    for seq in sorted(manifests, reverse=True):
        found = parts.get(seq, {})
        if any(i not in found for i in range(manifests[seq])):
            log.error("metadata snapshot %d lacks parts; trying an older one", seq)
            continue
        try:
            records: list[MetadataRecord] = []
            for i in range(manifests[seq]):
                records += decode_batch(found[i].value)
        except CodecError as exc:
            log.error("metadata snapshot %d: %s; trying an older one", seq, exc)
            continue
        image = image.apply(records)
        last_batch = seq
        break
    size = 0
    for seq, kv in sorted(batches, key=lambda b: b[0]):
        if seq > last_batch:
            image = image.apply(decode_batch(kv.value))
            last_batch = seq
            size += len(kv.value)
        if seq == last_batch:
            last_revision = kv.create_revision
    return Replayed(image, last_batch, last_revision, size)

