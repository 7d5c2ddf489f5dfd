"""message.max.bytes (default 1048588): a batch up to it is taken, one over it is
refused with MESSAGE_TOO_LARGE (10) and nothing of it is written."""

from __future__ import annotations

import random
from typing import Any

import pytest

from .clients import (
    BIG_REQUESTS,
    PYTHON_CLIENTS,
    Rec,
    consume,
    produce_error,
    raw_fetch,
    watermarks,
)

pytestmark = pytest.mark.interop

MESSAGE_MAX_BYTES = 1048588
MESSAGE_TOO_LARGE = 10
# one record, no key, no headers, in a v2 batch: 61 bytes of batch header and
# 11 of record framing (3-byte length and value-length varints)
OVERHEAD = 61 + 11


def payload(n: int) -> bytes:
    return random.Random(n).randbytes(n)  # incompressible, reproducible


@pytest.mark.parametrize("client", PYTHON_CLIENTS)
def test_message_near_max_is_taken_and_read_back(client: str, bootstrap: str, topic: str,
                                                  create_topic: Any) -> None:
    create_topic(topic, partitions=1)
    value = payload(MESSAGE_MAX_BYTES - 200)
    assert produce_error(client, bootstrap, topic, Rec(0, b"big", value),
                         config=BIG_REQUESTS[client]) == 0
    for reader in ("confluent", "kafka-python"):
        got = consume(reader, bootstrap, topic, 1)
        assert len(got) == 1, reader
        assert got[0].key == b"big"
        assert got[0].value == value, reader


@pytest.mark.parametrize("client", PYTHON_CLIENTS)
def test_message_over_max_is_refused(client: str, bootstrap: str, topic: str,
                                     create_topic: Any) -> None:
    create_topic(topic, partitions=1)
    value = payload(MESSAGE_MAX_BYTES + 100)
    code = produce_error(client, bootstrap, topic, Rec(0, None, value),
                         config=BIG_REQUESTS[client])
    assert code == MESSAGE_TOO_LARGE
    assert watermarks(bootstrap, topic, 0) == (0, 0)
    # the connection and the partition still work
    assert produce_error(client, bootstrap, topic, Rec(0, None, b"small")) == 0
    assert [r.value for r in consume("confluent", bootstrap, topic, 1)] == [b"small"]


def test_batch_of_exactly_max_bytes_is_taken_one_more_is_not(bootstrap: str, topic: str,
                                                             create_topic: Any) -> None:
    """The limit applies to the batch as sent, header included; inclusive."""
    create_topic(topic, partitions=1)
    cfg = BIG_REQUESTS["confluent"]
    exact = MESSAGE_MAX_BYTES - OVERHEAD
    assert produce_error("confluent", bootstrap, topic, Rec(0, None, payload(exact)),
                         config=cfg) == 0
    _, hw, batches = raw_fetch(bootstrap, topic, 0)
    assert hw == 1
    assert [b.size for b in batches] == [MESSAGE_MAX_BYTES]
    assert produce_error("confluent", bootstrap, topic, Rec(0, None, payload(exact + 1)),
                         config=cfg) == MESSAGE_TOO_LARGE
    assert watermarks(bootstrap, topic, 0) == (0, 1)
