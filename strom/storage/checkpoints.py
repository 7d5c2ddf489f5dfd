"""Kafka's small metadata files, each read leniently and written atomically.

Offset checkpoints (recovery-point-offset-checkpoint,
replication-offset-checkpoint, log-start-offset-checkpoint), Kafka's
OffsetCheckpointFile:

    0                       version
    2                       number of entries
    orders 0 1500           "<topic> <partition> <offset>"
    orders 1 1433

partition.metadata (PartitionMetadataFileFormatter), no trailing newline:

    version: 0
    topic_id: <16 bytes, URL-safe base64 without padding, as Uuid.toString>

meta.properties (Java properties; KRaft v1 as Kafka writes it):

    version=1
    node.id=<int>
    cluster.id=<string>
    directory.id=<uuid as above>

.kafka_cleanshutdown (CleanShutdownFileHandler): {"version":"0","broker_epoch":"-1"};
only its presence matters here.

Every write is `files.write_atomically`: temp file, fsync, rename, fsync the
directory. None of these formats is strom's own, so none needs migrating.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from strom.errors import KafkaStorageError
from strom.storage import files

__all__ = [
    "MetaProperties",
    "encode_uuid",
    "decode_uuid",
    "random_kafka_uuid",
    "read_offset_checkpoint",
    "salvage_offset_checkpoint",
    "write_offset_checkpoint",
    "read_partition_metadata",
    "write_partition_metadata",
    "check_partition_metadata",
    "read_meta_properties",
    "write_meta_properties",
    "write_clean_shutdown_marker",
]

TopicPartition = tuple[str, int]


class CheckpointError(ValueError):
    """A checkpoint file exists but cannot be parsed."""


# -- Kafka Uuid ------------------------------------------------------------


def encode_uuid(value: uuid.UUID) -> str:
    """Kafka's Uuid.toString: URL-safe base64 of the 16 bytes, no padding."""
    return base64.urlsafe_b64encode(value.bytes).rstrip(b"=").decode("ascii")


def decode_uuid(text: str) -> uuid.UUID:
    text = text.strip()
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if len(raw) != 16:
        raise ValueError(f"not a Kafka uuid: {text!r}")
    return uuid.UUID(bytes=raw)


def random_kafka_uuid() -> uuid.UUID:
    """A random uuid Kafka would accept (Uuid.randomUuid): not the reserved
    zero/one uuids and not printing with a leading '-'."""
    while True:
        value = uuid.uuid4()
        if value.int > 1 and not encode_uuid(value).startswith("-"):
            return value


# -- offset checkpoints ------------------------------------------------------


def read_offset_checkpoint(path: Path) -> dict[TopicPartition, int]:
    """Entries of an offset checkpoint file; {} if it does not exist. Strict,
    as Kafka's CheckpointFile.read: any malformed line raises CheckpointError."""
    entries, problem = salvage_offset_checkpoint(path)
    if problem is not None:
        raise CheckpointError(problem)
    return entries


def salvage_offset_checkpoint(path: Path) -> tuple[dict[TopicPartition, int], str | None]:
    """The well-formed entries of an offset checkpoint file, and a one-line
    description of what was wrong with it (None if nothing was).

    Kafka rejects a whole file for one malformed line and falls back to
    recovery point 0 and log start at the first segment for every partition
    of the directory, which brings back every record DeleteRecords removed.
    Keeping the entries that do parse limits that to the partitions whose
    lines are damaged. A bad header still loses the whole file: without it
    nothing says the lines are in this format.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}, None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {}, f"{path}: not UTF-8 text"
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) < 2:
        return {}, f"{path}: truncated header"
    if lines[0].strip() != "0":
        return {}, f"{path}: unsupported version {lines[0]!r}"
    try:
        count = int(lines[1])
    except ValueError:
        return {}, f"{path}: bad entry count {lines[1]!r}"
    entries: dict[TopicPartition, int] = {}
    malformed: list[str] = []
    for number, line in enumerate(lines[2:], start=3):
        parts = line.split()
        try:
            topic, partition, offset = parts
            if not files.is_legal_topic_name(topic):
                raise ValueError(topic)
            entries[(topic, _non_negative(partition))] = _non_negative(offset)
        except ValueError:
            malformed.append(f"line {number} {line!r}")
    if malformed:
        shown = ", ".join(malformed[:3]) + (", ..." if len(malformed) > 3 else "")
        return entries, f"{path}: {len(malformed)} malformed line(s): {shown}"
    if len(entries) != count:
        return entries, f"{path}: expected {count} entries, found {len(entries)}"
    return entries, None


def _non_negative(text: str) -> int:
    # int() alone would accept " 5", "+5", "5_000" and non-ASCII digits.
    if not (text.isascii() and text.isdigit()):
        raise ValueError(text)
    return int(text)


def format_offset_checkpoint(entries: Mapping[TopicPartition, int]) -> bytes:
    lines = ["0", str(len(entries))]
    lines.extend(f"{topic} {partition} {offset}" for (topic, partition), offset in entries.items())
    return ("\n".join(lines) + "\n").encode("utf-8")


def write_offset_checkpoint(path: Path, entries: Mapping[TopicPartition, int]) -> None:
    files.write_atomically(path, format_offset_checkpoint(entries))


# -- partition.metadata ------------------------------------------------------


def read_partition_metadata(path: Path) -> uuid.UUID | None:
    """The topic id stored in partition.metadata, None if there is no file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    fields = _parse_colon_fields(text)
    if fields.get("version") != "0":
        raise CheckpointError(f"{path}: unsupported version {fields.get('version')!r}")
    try:
        return decode_uuid(fields["topic_id"])
    except (KeyError, ValueError):
        raise CheckpointError(f"{path}: bad topic_id") from None


def format_partition_metadata(topic_id: uuid.UUID) -> bytes:
    return f"version: 0\ntopic_id: {encode_uuid(topic_id)}".encode()


def write_partition_metadata(path: Path, topic_id: uuid.UUID) -> None:
    files.write_atomically(path, format_partition_metadata(topic_id))


def check_partition_metadata(
    directory: Path, topic_id: uuid.UUID | None, *, write_missing: bool
) -> uuid.UUID | None:
    """The topic id in `directory`'s partition.metadata, refused
    (KafkaStorageError) if unreadable or not `topic_id`; written when missing
    and `write_missing` and `topic_id` is known."""
    path = directory / files.PARTITION_METADATA
    try:
        stored_id = read_partition_metadata(path)
    except (OSError, ValueError) as exc:  # CheckpointError, UnicodeDecodeError
        raise KafkaStorageError(
            f"{path} is unreadable ({exc}); delete it and restart the broker "
            "to have it rewritten from the topic id in the cluster metadata"
        ) from exc
    if topic_id is not None and stored_id is not None and stored_id != topic_id:
        raise KafkaStorageError(
            f"{directory}: topic id {encode_uuid(stored_id)} on disk, "
            f"expected {encode_uuid(topic_id)}"
        )
    if topic_id is not None and stored_id is None and write_missing:
        write_partition_metadata(path, topic_id)
    return stored_id


def _parse_colon_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


# -- meta.properties ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetaProperties:
    node_id: int
    cluster_id: str
    directory_id: uuid.UUID
    version: int = 1


def _parse_properties(text: str) -> dict[str, str]:
    """Java .properties, the subset Kafka writes: key=value lines, # comments."""
    props: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        for i, char in enumerate(line):
            if char in "=:":
                props[line[:i].strip()] = line[i + 1 :].strip()
                break
        else:
            props[line] = ""
    return props


def read_meta_properties(path: Path) -> MetaProperties | None:
    """None if there is no file; CheckpointError naming the file if it is damaged."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise CheckpointError(f"{path} is damaged: not a properties file (not UTF-8 text)"
                              ) from None
    props = _parse_properties(text)
    if props.get("version", "0") != "1":
        raise CheckpointError(f"{path}: only meta.properties version 1 (KRaft) is supported, "
                              f"found version {props.get('version', '0')!r}")
    try:
        node_id = int(props["node.id"])
        cluster_id = props["cluster.id"]
    except (KeyError, ValueError):
        raise CheckpointError(f"{path} is damaged: node.id and cluster.id are required"
                              ) from None
    try:
        directory_id = (
            decode_uuid(props["directory.id"]) if "directory.id" in props
            else random_kafka_uuid()
        )
    except ValueError:
        raise CheckpointError(f"{path} is damaged: bad directory.id") from None
    return MetaProperties(node_id, cluster_id, directory_id, 1)


def write_meta_properties(path: Path, meta: MetaProperties) -> None:
    text = (
        "#\n#Written by strom\n"
        f"cluster.id={meta.cluster_id}\n"
        f"directory.id={encode_uuid(meta.directory_id)}\n"
        f"node.id={meta.node_id}\n"
        f"version={meta.version}\n"
    )
    files.write_atomically(path, text.encode("utf-8"))


# -- clean shutdown marker ---------------------------------------------------


def write_clean_shutdown_marker(directory: Path) -> None:
    payload = json.dumps({"version": "0", "broker_epoch": "-1"}, separators=(",", ":"))
    files.write_atomically(directory / files.CLEAN_SHUTDOWN_MARKER, payload.encode("ascii"))


def consume_clean_shutdown_marker(directory: Path) -> bool:
    """Whether the last shutdown was clean; removes the marker (durably) so a
    crash from now on is detected as unclean."""
    path = directory / files.CLEAN_SHUTDOWN_MARKER
    if not path.exists():
        return False
    os.unlink(path)
    files.fsync_dir(directory)
    return True
