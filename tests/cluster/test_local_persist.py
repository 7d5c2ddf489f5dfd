"""strom-metadata.json written from per-topic JSON cached across commits
(hardening #4): the file is what `record_to_json` of the whole image gives,
and reads back to the same image after any sequence of commits."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path

from strom.cluster.image import (
    MetadataRecord,
    PartitionInfo,
    TopicInfo,
    image_to_records,
    record_to_json,
    topic_to_records,
)
from strom.cluster.local import LocalMetadataStore, topic_json


def _store(path: Path) -> LocalMetadataStore:
    return LocalMetadataStore(path, node_id=1, cluster_id="c", listener=("localhost", 9092))


def test_topic_json_is_record_to_json(tmp_path: Path) -> None:
    store = _store(tmp_path)
    asyncio.run(store.commit(store.operations.create_topic_records(
        "t", 5, 1, {"retention.ms": 1000, "cleanup.policy": ["compact"]})))
    topic = store.image.topics["t"]
    assert json.loads(f"[{topic_json(topic)}]") == [
        record_to_json(r) for r in topic_to_records(topic)]


def test_the_file_reads_back_as_the_image_after_every_commit(tmp_path: Path) -> None:
    store = _store(tmp_path)
    steps: list[Callable[[], list[MetadataRecord]]] = [
        lambda: store.operations.create_topic_records("a", 3, 1, {}),
        lambda: store.operations.create_topic_records("b", 2, 1, {"retention.ms": 5}),
        lambda: store.operations.create_partitions_records("a", 6, None),
        lambda: store.operations.topic_config_records("b", {"retention.ms": 7}),
        lambda: store.operations.broker_config_records({"log.retention.ms": 9}),
        lambda: store.operations.delete_topic_records("a"),
        lambda: store.operations.create_topic_records("a", 1, 1, {}),
    ]
    for step in steps:
        asyncio.run(store.commit(step()))
        data = json.loads(store.path.read_text())
        assert data["records"] == [record_to_json(r) for r in image_to_records(store.image)]
        assert image_to_records(_store(tmp_path).image) == image_to_records(store.image)


def test_topic_json_is_the_json_encoders_text() -> None:
    # Partitions are formatted without the JSON encoder: the text must be
    # exactly what it writes, reassignments and several replicas included.
    topic = TopicInfo("t", uuid.UUID(int=12345), tuple(
        PartitionInfo(i, i % 3 - 1, i * 7, ((i + 1) % 3, i % 3), ((i + 1) % 3,), 2**31 - 1)
        for i in range(40)) + (
        PartitionInfo(40, 2, 3, (2, 0, 1), (2,), 4, adding_replicas=(0,),
                      removing_replicas=(1,)),
        PartitionInfo(41, -1, 0, (), ())), {"retention.ms": 1000})
    assert topic_json(topic) == json.dumps(
        [record_to_json(r) for r in topic_to_records(topic)])[1:-1]
