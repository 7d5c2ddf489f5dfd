"""The hand-written MetadataResponse encoder agrees with kio byte for byte."""

from __future__ import annotations

import datetime
import random
import uuid
from typing import Any

import pytest

from strom.broker.handlers.metadata import describe_topic
from strom.cluster.image import PartitionInfo, TopicInfo
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.protocol.fast.metadata_response import encode_metadata_response
from strom.protocol.messages import encode_response, encode_response_frame


def _partition(rng: random.Random, index: int) -> dict[str, Any]:
    brokers = list(range(rng.randint(0, 4)))
    rng.shuffle(brokers)
    partition: dict[str, Any] = {
        "error_code": rng.choice([ErrorCode.none, 0, 5, ErrorCode.kafka_storage_error]),
        "partition_index": index, "leader_id": rng.choice([-1, 0, 2, 2**31 - 1]),
        "leader_epoch": rng.choice([-1, 0, 7, 2**31 - 1]),
        "replica_nodes": brokers, "isr_nodes": brokers[:rng.randint(0, len(brokers))],
        "offline_replicas": rng.choice([[], brokers[-1:]]),
    }
    for optional in ("leader_epoch", "replica_nodes", "isr_nodes", "offline_replicas"):
        if rng.random() < 0.1:
            del partition[optional]  # the schema's default, as messages.build gives it
    return partition


def _response(rng: random.Random, version: int) -> dict[str, Any]:
    topics = []
    for t in range(rng.randint(0, 3)):
        name: str | None = rng.choice([f"t{t}-ü", "x" * rng.choice([125, 126, 127, 300])])
        if version >= 12 and rng.random() < 0.2:
            name = None  # asked for by an unknown id
        topic: dict[str, Any] = {
            "error_code": rng.choice([0, 3, 29]), "name": name,
            "topic_id": rng.choice([uuid.UUID(int=rng.getrandbits(128)), uuid.UUID(int=0)]),
            "is_internal": rng.random() < 0.3,
            "partitions": [_partition(rng, i)
                           for i in range(rng.choice([0, 1, 3, 126, 127, 300]))],
            "topic_authorized_operations": rng.choice([-(2**31), 3576]),
        }
        if rng.random() < 0.2:
            del topic["is_internal"], topic["topic_authorized_operations"]
        topics.append(topic)
    brokers = [{"node_id": n, "host": rng.choice(["127.0.0.1", "h" * 130, "brökër"]),
                "port": rng.randint(1, 65535), "rack": rng.choice([None, "r1"])}
               for n in range(rng.randint(0, 3))]
    response: dict[str, Any] = {
        "throttle_time": rng.choice([0, 12, datetime.timedelta(milliseconds=40)]),
        "brokers": brokers, "cluster_id": rng.choice([None, "kZ3q-cluster"]),
        "controller_id": rng.choice([-1, 1]), "topics": topics,
        "cluster_authorized_operations": rng.choice([-(2**31), 1024]),
        "error_code": rng.choice([0, ErrorCode.none]),
    }
    if rng.random() < 0.2:
        del response["cluster_id"], response["controller_id"]
        del response["cluster_authorized_operations"]
    return response


@pytest.mark.parametrize("version", range(14))
@pytest.mark.parametrize("seed", range(12))
def test_matches_kio_byte_for_byte(version: int, seed: int) -> None:
    shape = _response(random.Random(seed * 31 + version), version)
    assert encode_metadata_response(version, 99, shape) == encode_response(
        ApiKey.METADATA, version, 99, shape, fast=False)


@pytest.mark.parametrize("version", [0, 5, 7, 9, 12, 13])
def test_a_big_topic_as_the_handler_describes_it(version: int) -> None:
    # 1,000 partitions over three brokers, one replica offline here: the
    # shape the handler builds, through the frame encoder the connection uses.
    topic = TopicInfo("big", uuid.uuid4(), tuple(
        PartitionInfo(i, i % 3, 4, (i % 3, (i + 1) % 3), (i % 3,)) for i in range(1000)))
    shape = {"throttle_time": 0, "cluster_id": "c", "controller_id": 0, "error_code": 0,
             "brokers": [{"node_id": n, "host": "127.0.0.1", "port": 9092 + n, "rack": None}
                         for n in range(3)],
             "topics": [describe_topic(topic, -(2**31), {("big", 7)}, {0: None, 1: None})]}
    frame = b"".join(encode_response_frame(ApiKey.METADATA, version, 5, shape))
    expected = encode_response(ApiKey.METADATA, version, 5, shape, fast=False)
    assert frame[4:] == expected
    assert int.from_bytes(frame[:4], "big") == len(expected)
