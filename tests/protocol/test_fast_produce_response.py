"""The hand-written ProduceResponse encoder agrees with kio byte for byte."""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest

from strom.protocol.api import ApiKey
from strom.protocol.fast.produce_response import encode_produce_response
from strom.protocol.messages import encode_response


def _response(rng: random.Random) -> dict[str, Any]:
    topics = []
    for t in range(rng.randint(0, 3)):
        partitions = [{
            "index": i, "error_code": rng.choice([0, 2, 10, 87]),
            "base_offset": rng.randint(-1, 10**12),
            "log_append_time": rng.choice([-1, 1700000000000]),
            "log_start_offset": rng.randint(-1, 10**6),
            "record_errors": [{"batch_index": rng.randint(0, 9),
                               "batch_index_error_message": rng.choice([None, "bad ü"])}
                              for _ in range(rng.randint(0, 2))],
            "error_message": rng.choice([None, "", "Record is invalid"]),
        } for i in range(rng.randint(0, 3))]
        topics.append({"name": f"t{t}-ü", "topic_id": uuid.UUID(int=rng.getrandbits(128)),
                       "partition_responses": partitions})
    return {"responses": topics, "throttle_time": rng.randint(0, 50)}


@pytest.mark.parametrize("version", range(3, 14))
@pytest.mark.parametrize("seed", range(10))
def test_matches_kio_byte_for_byte(version: int, seed: int) -> None:
    shape = _response(random.Random(seed * 17 + version))
    assert encode_produce_response(version, 99, shape) == encode_response(
        ApiKey.PRODUCE, version, 99, shape, fast=False)


@pytest.mark.parametrize("version", range(3, 14))
@pytest.mark.parametrize("name", ["t", "tü" * 20, "x" * 125, "x" * 126, "x" * 127, "x" * 300])
@pytest.mark.parametrize("error", [(0, None, []), (87, "Record is invalid", []),
                                   (87, None, [{"batch_index": 0,
                                                "batch_index_error_message": None}])])
def test_one_partition_answer_matches_kio(version: int, name: str,
                                          error: tuple[int, str | None, list[Any]]) -> None:
    # The one-topic, one-partition shape has a path of its own (_one_partition).
    code, message, record_errors = error
    shape = {"responses": [{"name": name, "topic_id": uuid.UUID(int=7 << 64),
                            "partition_responses": [{
                                "index": 2**31 - 1, "error_code": code, "base_offset": 2**40,
                                "log_append_time": -1, "log_start_offset": 3,
                                "record_errors": record_errors, "error_message": message}]}],
             "throttle_time": 12}
    assert encode_produce_response(version, -5, shape) == encode_response(
        ApiKey.PRODUCE, version, -5, shape, fast=False)
