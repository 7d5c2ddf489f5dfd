"""The schema walk that runs before kio reads a request (issue 13, findings 1
and 2): whole buffers pass, every truncation and every oversized count or
length is rejected, trailing bytes are ignored, nulls only where the schema
allows them; and whatever passes, kio decodes."""

from __future__ import annotations

import dataclasses
import datetime
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kio.schema.create_topics.v7 import request as create_topics_v7
from kio.serial import entity_reader
from kio.serial._introspect import classify_field, get_field_tag, is_optional

from strom.broker.router import load_handlers
from strom.errors import InvalidRequestError
from strom.protocol.api import ApiKey, request_class, request_header_version
from strom.protocol.headers import parse_request_header
from strom.protocol.messages import decode_request
from strom.protocol.request_check import check_entity
from tests.fuzz.values import encode_body, entity_draw

# Every (api key, version) the broker advertises.
ADVERTISED = sorted((int(key), version) for key, reg in load_handlers().items()
                    for version in range(reg.min_version, reg.max_version + 1))

# Issue 13's frames, size prefix included.
HUGE_COMPACT_COUNT = bytes.fromhex("00000019001300070000000100016300ffffffff0f0000000000000000")
NULL_TOPICS = bytes.fromhex("0000001300250002000000010001630000000075300000")


def _decode_frame(frame: bytes) -> object:
    body = frame[4:]
    api_key, version = struct.unpack_from(">hh", body)
    _, offset = parse_request_header(body, request_header_version(api_key, version))
    return decode_request(api_key, version, body, offset)


def test_huge_compact_count_is_rejected_before_kio_allocates() -> None:
    with pytest.raises(InvalidRequestError, match="longer than the request"):
        _decode_frame(HUGE_COMPACT_COUNT)


def test_huge_legacy_count_is_rejected() -> None:
    # CreateTopics v4 (not flexible): topics count 0x7fffffff, then nothing.
    body = struct.pack(">hhih", ApiKey.CREATE_TOPICS, 4, 1, 1) + b"c"
    body += struct.pack(">i", 0x7FFFFFFF) + struct.pack(">ib", 30000, 0)
    with pytest.raises(InvalidRequestError, match="longer than the request"):
        _decode_frame(struct.pack(">i", len(body)) + body)


def test_null_array_in_non_nullable_field_is_rejected() -> None:
    with pytest.raises(InvalidRequestError, match="null array"):
        _decode_frame(NULL_TOPICS)


def test_count_that_fits_bytes_but_not_elements_is_rejected() -> None:
    # 3 topics claimed, 10 bytes follow: a CreatableTopic takes at least 12 in v7.
    cls = create_topics_v7.CreateTopicsRequest
    data = b"\x04" + b"\x00" * 9
    with pytest.raises(InvalidRequestError, match="array of 3 elements"):
        check_entity(cls, data, 0)


def test_long_string_is_rejected() -> None:
    # CreateTopics v7: one topic whose name claims 1000 bytes.
    data = b"\x02" + b"\xe9\x07" + b"x" * 20
    with pytest.raises(InvalidRequestError, match="string longer than the request"):
        check_entity(create_topics_v7.CreateTopicsRequest, data, 0)


def test_tagged_fields_are_bounded_by_their_size() -> None:
    from kio.schema.fetch.v17.request import FetchRequest

    value = FetchRequest(max_wait=datetime.timedelta(milliseconds=500), min_bytes=1,
                         topics=(), forgotten_topics_data=())
    body = encode_body(FetchRequest, value)
    assert body[-1] == 0  # no tagged fields
    unknown = body[:-1] + bytes([1, 77, 3]) + b"abc"
    assert check_entity(FetchRequest, unknown, 0) == len(unknown)
    too_long = body[:-1] + bytes([1, 77, 100]) + b"abc"
    with pytest.raises(InvalidRequestError, match="tagged field 77 longer"):
        check_entity(FetchRequest, too_long, 0)
    # Tag 0 is cluster_id, a string: its declared size must be exactly its encoding.
    mismatched = body[:-1] + bytes([1, 0, 4, 3]) + b"ab" + b"zz"
    with pytest.raises(InvalidRequestError, match="does not match its size"):
        check_entity(FetchRequest, mismatched, 0)
    exact = body[:-1] + bytes([1, 0, 3, 3]) + b"ab"
    assert check_entity(FetchRequest, exact, 0) == len(exact)
    request, _ = entity_reader(FetchRequest)(memoryview(exact), 0)
    assert request.cluster_id == "ab"


def _top_level_arrays(cls: type) -> list[tuple[str, bool]]:
    return [(f.name, is_optional(f)) for f in dataclasses.fields(cls)
            if get_field_tag(f) is None and classify_field(f).is_array]


@pytest.mark.parametrize(("api_key", "version"), ADVERTISED)
def test_null_arrays_rejected_exactly_where_the_schema_forbids_them(
    api_key: int, version: int
) -> None:
    cls = request_class(api_key, version)
    base = entity_draw(cls)(random.Random(api_key * 100 + version))
    for name, nullable in _top_level_arrays(cls):
        body = encode_body(cls, dataclasses.replace(base, **{name: None}))
        if nullable:
            assert check_entity(cls, body, 0) == len(body)
        else:
            with pytest.raises(InvalidRequestError, match="null array"):
                check_entity(cls, body, 0)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(ADVERTISED), st.randoms(use_true_random=False))
def test_every_encoded_request_passes_and_kio_decodes_it(
    api_version: tuple[int, int], rng: random.Random
) -> None:
    api_key, version = api_version
    cls = request_class(api_key, version)
    value = entity_draw(cls)(rng)
    body = encode_body(cls, value)
    # Whole buffer, then with trailing bytes (ignored, as Kafka does).
    assert check_entity(cls, body, 0) == len(body)
    assert check_entity(cls, b"\x07" * 3 + body + b"\x00\xff", 3) == len(body) + 3
    decoded, size = entity_reader(cls)(memoryview(body), 0)
    assert size == len(body)
    assert type(decoded) is cls
    # Truncated at every byte: the walk needs every byte the encoding has.
    for cut in range(len(body)):
        with pytest.raises(InvalidRequestError):
            check_entity(cls, body[:cut], 0)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ADVERTISED), st.randoms(use_true_random=False), st.data())
def test_mutated_requests_are_checked_or_decoded_cleanly(
    api_version: tuple[int, int], rng: random.Random, data: st.DataObject
) -> None:
    """A byte flipped anywhere: the check rejects it, or kio reads it without
    a crash (it may still raise a clean error, e.g. on bad UTF-8)."""
    api_key, version = api_version
    cls = request_class(api_key, version)
    body = bytearray(encode_body(cls, entity_draw(cls)(rng)))
    if not body:
        return
    index = data.draw(st.integers(0, len(body) - 1))
    body[index] = data.draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, body[index] ^ 0x40]))
    try:
        end = check_entity(cls, body, 0)
    except InvalidRequestError:
        return
    try:
        _, size = entity_reader(cls)(memoryview(bytes(body)), 0)
    except Exception:  # noqa: BLE001 - kio's own clean errors (bad UTF-8, unknown tag)
        return
    assert size == end


@pytest.mark.parametrize("version", [3, 8, 9, 12, 13])
def test_produce_fast_path_rejects_huge_counts_and_null_arrays(version: int) -> None:
    """Produce skips the schema walk for its own parser, which must refuse the same."""
    flexible = version >= 9
    null_id = b"\x00" if flexible else b"\xff\xff"
    head = struct.pack(">hhih", ApiKey.PRODUCE, version, 1, 1) + b"c"
    head += b"\x00" if flexible else b""
    acks_timeout = struct.pack(">hi", 1, 1000)
    huge = b"\xff\xff\xff\xff\x0f" if flexible else struct.pack(">i", 0x7FFFFFFF)
    null = b"\x00" if flexible else struct.pack(">i", -1)
    for topics, message in ((huge, "longer than the request"), (null, "null array")):
        body = head + null_id + acks_timeout + topics + b"\x00" * 8
        with pytest.raises(InvalidRequestError, match=message):
            _decode_frame(struct.pack(">i", len(body)) + body)
