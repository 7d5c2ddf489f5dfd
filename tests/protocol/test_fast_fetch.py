"""The hand-written FetchResponse encoder agrees with kio byte for byte."""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest

from strom.protocol.api import ApiKey
from strom.protocol.fast.fetch import encode_fetch_response
from strom.protocol.messages import encode_response


def _response(rng: random.Random, version: int) -> dict[str, Any]:
    topics = []
    for t in range(rng.randint(0, 3)):
        partitions = []
        for i in range(rng.randint(0, 3)):
            records: Any = rng.choice([None, b"", rng.randbytes(rng.randint(1, 500))])
            aborted = rng.choice([None, [], [{"producer_id": rng.randint(0, 10**6),
                                             "first_offset": rng.randint(0, 10**9)}]])
            partitions.append({
                "partition_index": i, "error_code": rng.choice([0, 1, 3, 74]),
                "high_watermark": rng.randint(-1, 10**12),
                "last_stable_offset": rng.randint(-1, 10**12),
                "log_start_offset": rng.randint(-1, 10**12),
                "aborted_transactions": aborted, "preferred_read_replica": -1,
                "records": records,
            })
            if version >= 12 and rng.random() < 0.4:
                # A follower's fetch where its log diverges (tagged field 0).
                partitions[-1]["diverging_epoch"] = {"epoch": rng.randint(0, 2**31 - 1),
                                                     "end_offset": rng.randint(0, 10**12)}
        topics.append({"topic": f"topic-{t}-ü", "topic_id": uuid.UUID(int=rng.getrandbits(128)),
                       "partitions": partitions})
    return {"throttle_time": rng.randint(0, 100), "error_code": 0,
            "session_id": rng.randint(0, 1000), "responses": topics}


@pytest.mark.parametrize("version", range(4, 19))
@pytest.mark.parametrize("seed", range(8))
def test_matches_kio_byte_for_byte(version: int, seed: int) -> None:
    shape = _response(random.Random(seed * 31 + version), version)
    expected = encode_response(ApiKey.FETCH, version, 1234, shape, fast=False)
    assert b"".join(encode_fetch_response(version, 1234, shape)) == expected


def test_records_chunks_are_passed_through_not_copied() -> None:
    chunk = bytearray(b"x" * 1000)
    shape = {"throttle_time": 0, "error_code": 0, "session_id": 0, "responses": [
        {"topic": "t", "topic_id": None, "partitions": [{
            "partition_index": 0, "error_code": 0, "high_watermark": 1,
            "last_stable_offset": 1, "log_start_offset": 0, "aborted_transactions": None,
            "preferred_read_replica": -1, "records": [chunk, b"yy"]}]}]}
    chunks = encode_fetch_response(12, 1, shape)
    assert any(c is chunk for c in chunks)
    joined = dict(shape)
    expected = encode_response(ApiKey.FETCH, 12, 1, {**joined, "responses": [
        {**shape["responses"][0], "partitions": [
            {**shape["responses"][0]["partitions"][0], "records": bytes(chunk) + b"yy"}]}]},
        fast=False)
    assert b"".join(chunks) == expected
