"""The etcd key layout and value codec, without etcd (sans-I/O)."""

from __future__ import annotations

import json
import uuid

import pytest

from strom.cluster import metadata_version
from strom.cluster.etcd_codec import (
    COMPRESS_ABOVE,
    CodecError,
    decode_batch,
    decode_candidate,
    decode_registration,
    encode_batch,
    encode_candidate,
    encode_registration,
)
from strom.cluster.etcd_keys import ClusterKeys, KeyKind, ParsedKey
from strom.cluster.image import BrokerInfo, PartitionRecord, TopicConfigRecord, TopicRecord


def test_keys_round_trip_and_sort_in_batch_order() -> None:
    keys = ClusterKeys("prod")
    assert keys.broker(3) == "/strom/prod/brokers/3"
    assert keys.parse(keys.broker(3)) == ParsedKey(KeyKind.BROKER, 3)
    assert keys.parse(keys.candidate(0xABC)) == ParsedKey(KeyKind.CANDIDATE, 0xABC)
    assert keys.parse(keys.metadata_log(12)) == ParsedKey(KeyKind.METADATA_LOG, 12)
    assert sorted([keys.metadata_log(10), keys.metadata_log(9)])[0] == keys.metadata_log(9)
    assert keys.parse("/strom/other/brokers/1") is None
    assert keys.parse("/strom/prod/brokers/x") is None
    assert keys.parse("/strom/prod/unknown/1") is None
    with pytest.raises(ValueError):
        ClusterKeys("a/b")


def test_batches_round_trip_small_and_compressed() -> None:
    topic_id = uuid.uuid4()
    small = [TopicRecord("t", topic_id), TopicConfigRecord(topic_id, "retention.ms", 1000)]
    assert decode_batch(encode_batch(small)) == small
    big = [PartitionRecord(topic_id, p, (1, 2, 3), (1, 2, 3), 1, 0) for p in range(8000)]
    value = encode_batch(big)
    assert value.startswith(b"z") and len(value) < COMPRESS_ABOVE * 4
    assert decode_batch(value) == big


def test_values_of_a_newer_strom_or_damaged_are_refused() -> None:
    newer = json.dumps({"version": 2, "records": []}).encode()
    with pytest.raises(CodecError, match="newer strom"):
        decode_batch(newer)
    for bad in (b"{", b"[]", b"z\x00", json.dumps({"records": []}).encode(),
                json.dumps({"version": 1, "records": [{"type": "Nope"}]}).encode()):
        with pytest.raises(CodecError):
            decode_batch(bad)
    broker = BrokerInfo(2, "h", 9092, "rack-a", metadata_versions=(7, 11))
    assert decode_registration(encode_registration(broker)) == broker
    assert decode_candidate(encode_candidate(7)) == 7
    with pytest.raises(CodecError):
        decode_registration(json.dumps({"version": 1, "node_id": "2"}).encode())


def test_registration_carries_fenced_and_takes_its_epoch_from_the_key() -> None:
    fenced = BrokerInfo(3, "h", 9093, None, 41, True, (7, 11))
    assert decode_registration(encode_registration(fenced), 41) == fenced
    # A registration written before `fenced` existed reads as unfenced (and,
    # without `features`, as supporting metadata.version's minimum only).
    old = json.dumps({"version": 1, "node_id": 3, "host": "h", "port": 9093,
                      "rack": None}).encode()
    assert decode_registration(old, 12) == BrokerInfo(3, "h", 9093, None, 12, False, (7, 7))
    assert b"fenced" not in encode_registration(BrokerInfo(3, "h", 9093))
    with pytest.raises(CodecError):
        decode_registration(json.dumps({"version": 1, "node_id": 3, "host": "h", "port": 1,
                                        "rack": None, "fenced": "yes"}).encode())


def test_registration_advertises_the_metadata_versions_this_strom_supports() -> None:
    data = json.loads(encode_registration(BrokerInfo(3, "h", 9093)))
    assert data["features"] == {"metadata.version": [metadata_version.MINIMUM,
                                                     metadata_version.LATEST]}
    assert data["version"] == 1  # older strom reads it, ignoring the field it does not know
    for bad in ([11, 7], "7-11", [7], None):
        value = json.dumps({**data, "features": {"metadata.version": bad}}).encode()
        assert decode_registration(value).metadata_versions == (7, 7)
