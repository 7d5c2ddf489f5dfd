#!/usr/bin/env python3
"""What the pre-decode schema walk (strom/protocol/request_check.py) adds per
request, next to kio's own decode of the same bytes, for typical Metadata and
Fetch requests; and, for requests carrying tagged fields kio does not know
(the rare path), what the walk costs that also copies the body without them.

  .venv/bin/python bench/request_check.py

Best of 5 runs of 20,000 calls each; microseconds per request.
"""

from __future__ import annotations

import datetime
import functools
import io
import timeit
import uuid
from collections.abc import Callable
from typing import Any

from kio.schema.fetch.v17 import request as fetch
from kio.schema.metadata.v12 import request as metadata
from kio.schema.types import TopicName
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i32, i32Timedelta, i64

from strom.protocol.request_check import check_request
from strom.protocol.varint import encode_uvarint

CALLS = 20_000


def _encode(value: Any) -> memoryview:
    out = io.BytesIO()
    entity_writer(type(value))(out, value)
    return memoryview(out.getvalue()).toreadonly()


def _fetch(partitions: int) -> fetch.FetchRequest:
    parts = tuple(fetch.FetchPartition(
        partition=i32(i), current_leader_epoch=i32(0),
        fetch_offset=i64(100), last_fetched_epoch=i32(-1),
        log_start_offset=i64(-1), partition_max_bytes=i32(1 << 20))
        for i in range(partitions))
    return fetch.FetchRequest(
        max_wait=i32Timedelta.parse(datetime.timedelta(milliseconds=500)),
        min_bytes=i32(1), max_bytes=i32(50 << 20),
        topics=(fetch.FetchTopic(topic_id=uuid.uuid4(), partitions=parts),),
        forgotten_topics_data=())


def _with_unknown_tags(request: fetch.FetchRequest) -> memoryview:
    """The Fetch encoding with an unknown tag in every partition and at the top level."""
    out = bytes(_encode(request))
    tag = b"\x01" + encode_uvarint(100) + b"\x04abcd"
    for partition in reversed(request.topics[0].partitions):
        part = bytes(_encode(partition))
        at = out.index(part) + len(part) - 1
        out = out[:at] + tag + out[at + 1:]
    return memoryview(out[:-1] + tag).toreadonly()


def _best(call: Callable[[], object]) -> float:
    """Microseconds per call, best of 5 runs."""
    return min(timeit.repeat(call, number=CALLS, repeat=5)) / CALLS * 1e6


def main() -> None:
    cases: dict[str, Any] = {
        "Metadata v12, 1 topic": metadata.MetadataRequest(
            topics=(metadata.MetadataRequestTopic(topic_id=None,
                                                  name=TopicName("orders")),),
            allow_auto_topic_creation=True, include_topic_authorized_operations=False),
        "Metadata v12, all topics": metadata.MetadataRequest(
            topics=None, allow_auto_topic_creation=True,
            include_topic_authorized_operations=False),
    }
    for n in (1, 10, 100):
        cases[f"Fetch v17, 1 topic x {n} partitions"] = _fetch(n)
    print(f"{'request':46s} {'bytes':>6s} {'check us':>9s} {'kio decode us':>14s}")
    for name, value in cases.items():
        cls = type(value)
        data = _encode(value)
        reader = entity_reader(cls)
        assert check_request(cls, data, 0) == (data, 0)
        check = _best(functools.partial(check_request, cls, data, 0))
        decode = _best(functools.partial(reader, data, 0))
        print(f"{name:46s} {len(data):6d} {check:9.2f} {decode:14.2f}")
    for n in (1, 10, 100):
        request = _fetch(n)
        data = _with_unknown_tags(request)
        body, _ = check_request(fetch.FetchRequest, data, 0)
        assert body == _encode(request)
        check = _best(functools.partial(check_request, fetch.FetchRequest, data, 0))
        decode = _best(functools.partial(entity_reader(fetch.FetchRequest), body, 0))
        name = f"Fetch v17, {n} partitions, {n + 1} unknown tags"
        print(f"{name:46s} {len(data):6d} {check:9.2f} {decode:14.2f}")


if __name__ == "__main__":
    main()
