"""acks=0, 1 and all each get records written, from every producer."""

from __future__ import annotations

from typing import Any

import pytest

from .clients import (
    PRODUCERS,
    by_partition_in_order,
    consume,
    content,
    keyed_records,
    produce,
    wait_until,
    watermarks,
)

pytestmark = pytest.mark.interop


CASES = [
    pytest.param(acks, p, id=f"acks{acks}-{p}", marks=[pytest.mark.java] if p == "java" else [])
    for p in PRODUCERS
    for acks in ("0", "1", "all")
    if not (p in ("kcat", "java") and acks == "1")  # the CLIs: 0 and all are enough
]


@pytest.mark.parametrize(("acks", "producer"), CASES)
def test_acks(acks: str, producer: str, bootstrap: str, topic: str, create_topic: Any,
              client_available: Any) -> None:
    client_available(producer)
    create_topic(topic, partitions=2)
    recs = keyed_records(8, partitions=2, tag=f"acks{acks}")
    produce(producer, bootstrap, topic, recs, acks=acks)
    # with acks=0 the producer does not hear back: wait for the high watermarks
    wait_until(lambda: [watermarks(bootstrap, topic, p)[1] for p in (0, 1)] == [4, 4], 15,
               what="high watermarks 4 and 4")
    got = consume("confluent", bootstrap, topic, len(recs))
    if producer == "kcat" and acks == "0":
        # one kcat process (connection) per record, none waiting for the last: the
        # broker need not append them in the order the processes ran
        assert sorted(content(got)) == sorted(content(recs))
    else:
        assert content(got) == content(by_partition_in_order(recs))
