"""Null and empty keys, values and header values round trip, and stay distinct:
a null value (a tombstone) is not an empty value."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from .clients import CONSUMERS, Rec, consume, content, produce

pytestmark = pytest.mark.interop

RECORDS = [
    Rec(0, None, b"value-with-null-key", (("h", b"1"),)),
    Rec(0, b"key-with-null-value", None, (("h", b"2"),)),
    Rec(0, b"key-with-empty-value", b"", (("h", b"3"),)),
    Rec(0, b"", b"value-with-empty-key", (("h", b"4"),)),
    Rec(0, None, None, (("h", b"5"),)),
    Rec(0, b"", b"", (("h", b"6"),)),
    Rec(0, b"k", b"v", (("empty-header", b""), ("null-header", None))),
]

# kcat cannot produce an empty or null value
NULL_PRODUCERS = ("confluent", "kafka-python", "aiokafka", "java")


@pytest.mark.parametrize(
    "consumer",
    [pytest.param(c, marks=[pytest.mark.java] if c == "java" else []) for c in CONSUMERS],
)
@pytest.mark.parametrize(
    "producer",
    [pytest.param(p, marks=[pytest.mark.java] if p == "java" else []) for p in NULL_PRODUCERS],
)
def test_null_and_empty_round_trip(producer: str, consumer: str, bootstrap: str, topic: str,
                                   create_topic: Any, client_available: Any) -> None:
    client_available(producer)
    client_available(consumer)
    create_topic(topic, partitions=1)
    recs = RECORDS
    if producer in ("kafka-python", "aiokafka"):
        # both refuse a record whose key and value are both null
        recs = [r for r in RECORDS if r.key is not None or r.value is not None]
    if producer == "kafka-python":
        # which refuses null header values
        recs = [replace(r, headers=tuple(h for h in r.headers if h[1] is not None))
                for r in recs]
    produce(producer, bootstrap, topic, recs)
    got = consume(consumer, bootstrap, topic, len(recs))
    assert content(got) == content(recs)
    assert [r.offset for r in got] == list(range(len(recs)))
