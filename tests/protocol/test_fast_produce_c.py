"""The C request header and ProduceRequest parsers (strom/protocol/fast/_produce.c)
against the Python ones.

The C parsers may only accept what the Python parsers accept, with the same
result; on anything else they answer None (the Python parser then raises).
Checked on random requests of every version, on random damage to them and
on arbitrary bytes.
"""

from __future__ import annotations

import datetime
import io
import shutil
import sysconfig
import uuid
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kio.serial import entity_writer

from strom.errors import InvalidRequestError
from strom.protocol.api import ApiKey, request_class
from strom.protocol.fast.produce import ProduceRequest, parse_produce_request_python
from strom.protocol.headers import RequestHeader, parse_request_header_python
from strom.protocol.varint import encode_uvarint

_fast: ModuleType | None
try:
    from strom.protocol.fast import _produce as _fast
except ImportError:  # pragma: no cover - installs without a compiler
    _fast = None
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
needs_fast = pytest.mark.skipif(_fast is None, reason="the C parsers are not built")
damage = st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)),
                  max_size=3)


def test_the_c_parsers_are_built_where_a_compiler_is() -> None:
    if shutil.which(sysconfig.get_config_var("CC").split()[0] or "cc") is None:
        pytest.skip("no C compiler here")
    assert _fast is not None


@st.composite
def produce_bodies(draw: st.DrawFn, version: int) -> bytes:
    cls: Any = request_class(ApiKey.PRODUCE, version)
    module = __import__(cls.__module__, fromlist=["x"])
    names = st.text(max_size=8)
    topics = []
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        partitions = tuple(
            module.PartitionProduceData(index=draw(st.integers(-(2**31), 2**31 - 1)),
                                        records=draw(st.none() | st.binary(max_size=300)))
            for _ in range(draw(st.integers(min_value=0, max_value=3))))
        if version >= 13:
            topics.append(module.TopicProduceData(
                topic_id=uuid.UUID(int=draw(st.integers(0, 2**128 - 1))),
                partition_data=partitions))
        else:
            topics.append(module.TopicProduceData(name=draw(names), partition_data=partitions))
    request = cls(transactional_id=draw(st.none() | names),
                  acks=draw(st.integers(-(2**15), 2**15 - 1)),
                  timeout=datetime.timedelta(milliseconds=draw(st.integers(0, 2**31 - 1))),
                  topic_data=tuple(topics))
    out = io.BytesIO()
    entity_writer(cls)(out, request)
    return out.getvalue()


def _python_produce(version: int, frame: bytearray, offset: int) -> ProduceRequest | None:
    try:
        return parse_produce_request_python(version, frame, offset)
    except InvalidRequestError:
        return None


def _damaged(data: bytes, changes: list[tuple[int, int]], cut: int) -> bytearray:
    out = bytearray(data)
    for position, value in changes:
        if out:
            out[position % len(out)] = value
    return out[: max(len(out) - cut, 0)]


@needs_fast
@PROPERTY
@given(data=st.data(), version=st.integers(min_value=3, max_value=13), prefix=st.binary(max_size=4),
       changes=damage, cut=st.sampled_from([0, 0, 0, 1, 5, 20]))
def test_c_produce_parser_accepts_exactly_what_python_accepts(
        data: st.DataObject, version: int, prefix: bytes, changes: list[tuple[int, int]],
        cut: int) -> None:
    body = data.draw(produce_bodies(version))
    frame = _damaged(prefix + body, changes, cut)
    assert _fast is not None
    got = _fast.parse_produce_request(version, frame, len(prefix))
    want = _python_produce(version, frame, len(prefix))
    if not changes and not cut:
        assert want is not None and got is not None
    if got is not None:
        assert got == want
        for topic in got.topic_data:
            for partition in topic.partition_data:
                # Views of the frame, writable as the Python parser's are: offsets
                # are patched in place.
                assert partition.records is None or not partition.records.readonly
        assert type(got) is ProduceRequest


@needs_fast
@PROPERTY
@given(version=st.integers(min_value=0, max_value=14), frame=st.binary(max_size=80),
       offset=st.integers(min_value=-2, max_value=90))
def test_c_produce_parser_on_arbitrary_bytes(version: int, frame: bytes, offset: int) -> None:
    assert _fast is not None
    got = _fast.parse_produce_request(version, bytearray(frame), offset)
    if offset < 0 or offset > len(frame):
        assert got is None
        return
    want = _python_produce(version, bytearray(frame), offset)
    assert got is None or got == want


def _python_header(frame: bytes, header_version: int) -> tuple[RequestHeader, int] | None:
    try:
        return parse_request_header_python(frame, header_version)
    except InvalidRequestError:
        return None


@needs_fast
@PROPERTY
@given(fixed=st.binary(min_size=8, max_size=8), client_id=st.none() | st.text(max_size=10),
       tags=st.lists(st.tuples(st.integers(0, 300), st.binary(max_size=140)), max_size=3),
       header_version=st.integers(min_value=0, max_value=2), changes=damage,
       cut=st.sampled_from([0, 0, 1, 3]), body=st.binary(max_size=8))
def test_c_header_parser_accepts_exactly_what_python_accepts(
        fixed: bytes, client_id: str | None, tags: list[tuple[int, bytes]], header_version: int,
        changes: list[tuple[int, int]], cut: int, body: bytes) -> None:
    raw = bytearray(fixed)
    if header_version >= 1:
        encoded = None if client_id is None else client_id.encode()
        raw += (-1).to_bytes(2, "big", signed=True) if encoded is None else \
            len(encoded).to_bytes(2, "big") + encoded
    if header_version >= 2:
        raw += encode_uvarint(len(tags))
        for tag, value in tags:
            raw += encode_uvarint(tag) + encode_uvarint(len(value)) + value
    frame = bytes(_damaged(bytes(raw) + body, changes, cut))
    assert _fast is not None
    got = _fast.parse_request_header(frame, header_version)
    want = _python_header(frame, header_version)
    if not changes and not cut:
        assert got is not None
    assert got is None or got == want
    assert _fast.parse_request_header(memoryview(frame), header_version) == got


@needs_fast
@PROPERTY
@given(frame=st.binary(max_size=40), header_version=st.integers(min_value=0, max_value=2))
def test_c_header_parser_on_arbitrary_bytes(frame: bytes, header_version: int) -> None:
    assert _fast is not None
    got = _fast.parse_request_header(frame, header_version)
    assert got is None or got == _python_header(frame, header_version)
