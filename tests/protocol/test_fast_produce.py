"""The hand-written ProduceRequest parser agrees with kio on every version."""

from __future__ import annotations

import datetime
import io
import random
import uuid

import pytest
from kio.serial import entity_writer

from strom.errors import InvalidRequestError
from strom.protocol.api import ApiKey, request_class
from strom.protocol.fast.produce import parse_produce_request


def _kio_request(version: int, rng: random.Random) -> object:
    cls = request_class(ApiKey.PRODUCE, version)
    module = __import__(cls.__module__, fromlist=["x"])
    topics = []
    for t in range(rng.randint(0, 3)):
        partitions = [
            module.PartitionProduceData(
                index=rng.randint(0, 1000),
                records=None if rng.random() < 0.2 else rng.randbytes(rng.randint(0, 3000)))
            for _ in range(rng.randint(0, 4))
        ]
        if version >= 13:
            topics.append(module.TopicProduceData(topic_id=uuid.UUID(int=rng.getrandbits(128)),
                                                  partition_data=tuple(partitions)))
        else:
            topics.append(module.TopicProduceData(name=f"topic-{t}-ü",
                                                  partition_data=tuple(partitions)))
    return cls(transactional_id=rng.choice([None, "", "txn-1"]), acks=rng.choice([-1, 0, 1]),
               timeout=datetime.timedelta(milliseconds=rng.randint(0, 60000)),
               topic_data=tuple(topics))


def _encode(request: object) -> bytes:
    out = io.BytesIO()
    entity_writer(type(request))(out, request)
    return out.getvalue()


@pytest.mark.parametrize("version", range(3, 14))
@pytest.mark.parametrize("seed", range(10))
def test_matches_kio(version: int, seed: int) -> None:
    rng = random.Random(seed * 100 + version)
    expected = _kio_request(version, rng)
    frame = bytearray(b"HEADER" + _encode(expected))
    parsed = parse_produce_request(version, frame, 6)
    assert parsed.transactional_id == expected.transactional_id  # type: ignore[attr-defined]
    assert parsed.acks == expected.acks  # type: ignore[attr-defined]
    assert parsed.timeout == expected.timeout.total_seconds() * 1000  # type: ignore[attr-defined]
    assert len(parsed.topic_data) == len(expected.topic_data)  # type: ignore[attr-defined]
    for got, want in zip(parsed.topic_data, expected.topic_data, strict=True):  # type: ignore[attr-defined]
        assert got.name == getattr(want, "name", None)
        assert got.topic_id == getattr(want, "topic_id", None)
        for gp, wp in zip(got.partition_data, want.partition_data, strict=True):
            assert gp.index == wp.index
            assert (None if gp.records is None else bytes(gp.records)) == wp.records


def test_records_are_writable_views_of_the_frame() -> None:
    expected = _kio_request(9, random.Random(3))
    frame = bytearray(_encode(expected))
    parsed = parse_produce_request(9, frame, 0)
    views = [p.records for t in parsed.topic_data for p in t.partition_data
             if p.records is not None and len(p.records)]
    assert views
    views[0][0] ^= 0xFF
    assert views[0].obj is frame


@pytest.mark.parametrize("version", [3, 9, 13])
def test_every_truncation_is_rejected(version: int) -> None:
    data = _encode(_kio_request(version, random.Random(7)))
    for cut in range(len(data)):
        try:
            parse_produce_request(version, bytearray(data[:cut]), 0)
        except InvalidRequestError:
            continue
        # A prefix may only parse if it is itself a complete request.
        assert cut == len(data)
    parse_produce_request(version, bytearray(data), 0)


def test_huge_counts_rejected_without_allocating() -> None:
    data = bytearray(b"\xff\xff" + b"\x00\x01" + b"\x00\x00\x13\x88" + b"\x7f\xff\xff\xff")
    with pytest.raises(InvalidRequestError):
        parse_produce_request(3, data, 0)
