"""A broker that learns of a big topic from the etcd watch makes its logs on a
worker thread, as the broker that handled the CreateTopics does (real etcd,
two `strom serve` processes). Before, the watch applied the metadata and
made every log inline: the broker answered no client until its last
partition.metadata was written. The test checks ordering, not speed: the
other broker answers while its logs are still being made."""

from __future__ import annotations

import time

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from tests.broker.raw_client import RawClient
from tests.interop.clients import wait_until
from tests.process import StromProcess

PARTITIONS = 2_000  # a second or more of filesystem work per broker
TOPIC = "big"


def test_a_broker_following_a_big_creation_keeps_answering(
        roles: tuple[StromProcess, StromProcess]) -> None:
    controller, other = roles
    data = other.data_dir
    last = data / f"{TOPIC}-{PARTITIONS - 1}" / "partition.metadata"
    with RawClient(controller.bootstrap, timeout=120) as admin, \
            RawClient(other.bootstrap, timeout=120) as client:
        client.send(ApiKey.API_VERSIONS, 0, {})  # connected before the watch brings the topic
        created = admin.send_only(ApiKey.CREATE_TOPICS, 7, {
            "topics": [{"name": TOPIC, "num_partitions": PARTITIONS, "replication_factor": 2,
                        "assignments": [], "configs": []}], "timeout": 120_000})
        deadline = time.monotonic() + 120
        while not (data / f"{TOPIC}-0").exists():
            assert time.monotonic() < deadline, "the other broker made no log of the topic"
            time.sleep(0.002)  # polling the filesystem: there is no event to wait on
        client.send(ApiKey.API_VERSIONS, 0, {})
        assert not last.exists(), "the other broker answered only once every log was made"
        response = admin.receive(ApiKey.CREATE_TOPICS, 7, created)
        assert response.topics[0].error_code == ErrorCode.none
    wait_until(last.exists, 120, what="every log of the topic made on the other broker")
