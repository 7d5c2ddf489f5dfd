"""Topic names are checked exactly as Kafka checks them (Topic.validate), wherever
a name enters; a name that could break the files named after it never does.

Found at 0098471: "evil\n" passed the check (a regex "$" matches before a final
newline). Its directory broke all three offset checkpoint files, and a clean
restart then brought back every record DeleteRecords had removed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.storage import checkpoints, files
from tests.broker.raw_client import RawClient
from tests.process import StromProcess

TIMEOUT = 15
ILLEGAL = ["evil\n", "a\nb", "\n", "tab\t", "sp ace", "ü", ".", "..", "", "x" * 250,
           "evil\r", "0\n"]


def _create(client: RawClient, name: str) -> tuple[int, str | None]:
    response = client.send(ApiKey.CREATE_TOPICS, 7, {
        "topics": [{"name": name, "num_partitions": 1, "replication_factor": 1,
                    "assignments": [], "configs": []}],
        "timeout_ms": 5000})
    (result,) = response.topics
    return int(result.error_code), result.error_message


def _metadata(client: RawClient, name: str) -> int:
    response = client.send(ApiKey.METADATA, 12, {
        "topics": [{"name": name, "topic_id": None}],
        "allow_auto_topic_creation": True, "include_topic_authorized_operations": False})
    (topic,) = response.topics
    return int(topic.error_code)


def _earliest(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe"})
    try:
        low, _ = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT)
        return int(low)
    finally:
        consumer.close()


@pytest.fixture
def strom(tmp_path: Path):  # type: ignore[no-untyped-def]
    process = StromProcess(tmp_path / "data")
    process.start()
    yield process
    process.stop()


def test_illegal_names_are_refused_and_delete_records_survives_a_restart(
        strom: StromProcess) -> None:
    with RawClient(strom.bootstrap) as client:
        for name in ILLEGAL:
            code, message = _create(client, name)
            assert code == ErrorCode.invalid_topic_exception, (name, code)
            assert message
            assert _metadata(client, name) == ErrorCode.invalid_topic_exception, name
        assert _create(client, "x" * 249)[0] == ErrorCode.none  # the longest legal name
    admin = AdminClient({"bootstrap.servers": strom.bootstrap})
    admin.create_topics([NewTopic("good", 1)])["good"].result(TIMEOUT)
    producer = Producer({"bootstrap.servers": strom.bootstrap, "linger.ms": 5})
    for i in range(1000):
        producer.produce("good", value=b"%d" % i)
    # Its directory is made by its first record (issue 19): the name fits.
    producer.produce("x" * 249, value=b"long")
    assert producer.flush(TIMEOUT) == 0
    deleted = admin.delete_records([TopicPartition("good", 0, 1000)])
    assert next(iter(deleted.values())).result(TIMEOUT).low_watermark == 1000
    assert strom.terminate() == 0
    data = strom.data_dir
    assert sorted(p.name for p in data.iterdir() if p.is_dir()) == ["good-0", "x" * 249 + "-0"]
    for name in (files.RECOVERY_POINT_CHECKPOINT, files.LOG_START_OFFSET_CHECKPOINT,
                 files.REPLICATION_OFFSET_CHECKPOINT):
        assert ("good", 0) in checkpoints.read_offset_checkpoint(data / name), name
    strom.start()
    assert _earliest(strom.bootstrap, "good") == 1000


def test_a_topic_with_an_illegal_name_from_an_older_strom(tmp_path: Path) -> None:
    """A data directory where 0098471 created "evil\\n" (the checkpoints broken by
    it): the broker starts, serves the other topics, keeps their DeleteRecords,
    and the illegal topic can be deleted. Before, start-up died with a traceback."""
    import json

    strom = StromProcess(tmp_path / "data")
    strom.start()
    try:
        admin = AdminClient({"bootstrap.servers": strom.bootstrap})
        for name in ("evilX", "good"):
            admin.create_topics([NewTopic(name, 1)])[name].result(TIMEOUT)
        producer = Producer({"bootstrap.servers": strom.bootstrap})
        for i in range(10):
            producer.produce("good", value=b"%d" % i)
        producer.produce("evilX", value=b"e")  # its directory: made by a first record
        assert producer.flush(TIMEOUT) == 0
        deleted = admin.delete_records([TopicPartition("good", 0, 10)])
        assert next(iter(deleted.values())).result(TIMEOUT).low_watermark == 10
        assert strom.terminate() == 0
        # What 0098471 left behind: the name in the metadata, the directory and
        # the checkpoint lines.
        data = strom.data_dir
        metadata = data / "strom-metadata.json"
        metadata.write_text(metadata.read_text().replace('"evilX"', json.dumps("evil\n")))
        (data / "evilX-0").rename(data / "evil\n-0")
        for name in (files.RECOVERY_POINT_CHECKPOINT, files.LOG_START_OFFSET_CHECKPOINT,
                     files.REPLICATION_OFFSET_CHECKPOINT):
            path = data / name
            path.write_text(path.read_text().replace("evilX", "evil\n"))
        strom.start()
        assert _earliest(strom.bootstrap, "good") == 10
        admin = AdminClient({"bootstrap.servers": strom.bootstrap})
        assert "evil\n" in admin.list_topics(timeout=TIMEOUT).topics
        admin.delete_topics(["evil\n"])["evil\n"].result(TIMEOUT)
        topics = admin.list_topics(timeout=TIMEOUT).topics
        assert "evil\n" not in topics and "good" in topics
    finally:
        strom.stop()
