"""Tagged fields the broker does not know are skipped, as Kafka skips them
(KIP-482: a newer client may add optional fields older brokers ignore), in a
request body at any depth and in the request header; kio's reader refuses
them, so the decoder hands it a copy without them. A request with unknown
tags decodes exactly like the same request without them. Sizes still bind:
an unknown field running past the request, or a known one whose declared size
is not its encoding, is refused."""

from __future__ import annotations

import dataclasses
import datetime
import random
import struct
import uuid

import pytest
from kio.schema.create_topics.v7 import request as ct
from kio.schema.fetch.v17 import request as fetch
from kio.serial._introspect import get_field_tag

from strom.errors import InvalidRequestError
from strom.protocol.api import ApiKey, request_class, request_header_version
from strom.protocol.headers import parse_request_header
from strom.protocol.messages import decode_request
from strom.protocol.request_check import check_entity, check_request
from strom.protocol.varint import encode_uvarint
from tests.fuzz.values import encode_body, entity_draw
from tests.protocol.test_request_check import ADVERTISED

FLEXIBLE = [(key, version) for key, version in ADVERTISED
            if key != ApiKey.PRODUCE and request_class(key, version).__flexible__]


def tagged(*fields: tuple[int, bytes]) -> bytes:
    """A tagged-field section: count, then tag, size and value of each."""
    out = encode_uvarint(len(fields))
    for tag, value in fields:
        out += encode_uvarint(tag) + encode_uvarint(len(value)) + value
    return out


def with_section(body: bytes, at: int, section: bytes) -> bytes:
    """`body` with the empty tagged-field section at `at` replaced by `section`."""
    assert body[at] == 0, "not an empty tagged-field section"
    return body[:at] + section + body[at + 1:]


def assert_decodes_like(api_key: int, version: int, with_tags: bytes, without: bytes) -> None:
    cls = request_class(api_key, version)
    spliced, offset = check_request(cls, memoryview(with_tags), 0)
    assert bytes(spliced[offset:]) == without
    assert check_entity(cls, with_tags, 0) == len(with_tags)
    assert decode_request(api_key, version, with_tags, 0) == \
        decode_request(api_key, version, without, 0)


def _without_top_level_tags(cls: type, value: object) -> object:
    """`value` with its top-level tagged fields at their defaults (not written)."""
    defaults = {f.name: f.default for f in dataclasses.fields(cls)
                if get_field_tag(f) is not None and f.default is not dataclasses.MISSING}
    return dataclasses.replace(value, **defaults)  # type: ignore[type-var]


@pytest.mark.parametrize(("api_key", "version"), FLEXIBLE)
def test_unknown_top_level_tags_in_every_flexible_request(api_key: int, version: int) -> None:
    cls = request_class(api_key, version)
    value = _without_top_level_tags(cls, entity_draw(cls)(random.Random(api_key * 100 + version)))
    body = encode_body(cls, value)
    # Tags well past any Kafka defines, a 2-byte tag varint, an empty value.
    section = tagged((90, b"\x01\x02\x03"), (1000, b"x" * 200), (1001, b""))
    assert_decodes_like(api_key, version, with_section(body, len(body) - 1, section), body)


def _fetch_request(replica_state: fetch.ReplicaState | None = None) -> fetch.FetchRequest:
    partition = fetch.FetchPartition(
        partition=7, current_leader_epoch=3, fetch_offset=0x0102030405060708,
        last_fetched_epoch=-1, log_start_offset=-1, partition_max_bytes=1 << 20)
    kwargs = {} if replica_state is None else {"replica_state": replica_state}
    return fetch.FetchRequest(
        max_wait=datetime.timedelta(milliseconds=500), min_bytes=1, max_bytes=1 << 20,
        topics=(fetch.FetchTopic(topic_id=uuid.UUID(int=42), partitions=(partition,)),),
        forgotten_topics_data=(), **kwargs)  # type: ignore[arg-type]


def _end_of(body: bytes, inner: bytes) -> int:
    """Where the tagged-field section closing `inner` (a unique sub-encoding) sits."""
    at = body.index(inner)
    assert body.find(inner, at + 1) == -1
    return at + len(inner) - 1


def test_unknown_tag_in_a_nested_struct() -> None:
    request = _fetch_request()
    body = encode_body(fetch.FetchRequest, request)
    partition = request.topics[0].partitions[0]
    at = _end_of(body, encode_body(fetch.FetchPartition, partition))
    with_tag = with_section(body, at, tagged((5000, b"future partition data")))
    assert_decodes_like(ApiKey.FETCH, 17, with_tag, body)
    # And both levels at once: the partition's and the request's own.
    both = with_section(with_tag, len(with_tag) - 1, tagged((60, b"\x00")))
    assert_decodes_like(ApiKey.FETCH, 17, both, body)


def test_unknown_tag_inside_a_known_tagged_struct_shrinks_its_size() -> None:
    # FetchRequest tag 1 is ReplicaState, a struct with its own tagged fields:
    # removing an unknown tag inside it changes the size declared for tag 1,
    # here from a 2-byte varint (>= 128) to a 1-byte one.
    state = fetch.ReplicaState(replica_id=1, replica_epoch=2)
    body = encode_body(fetch.FetchRequest, _fetch_request(state))
    state_bytes = encode_body(fetch.ReplicaState, state)
    at = body.rindex(encode_uvarint(len(state_bytes)) + state_bytes)
    inner = tagged((77, b"y" * 150))
    grown = state_bytes[:-1] + inner
    with_tag = body[:at] + encode_uvarint(len(grown)) + grown + body[at + 1 + len(state_bytes):]
    assert len(encode_uvarint(len(grown))) == 2
    assert_decodes_like(ApiKey.FETCH, 17, with_tag, body)
    assert decode_request(ApiKey.FETCH, 17, with_tag, 0).replica_state == state


def test_unknown_tags_in_every_element_of_an_array() -> None:
    # CreateTopics v7: 100 topics, each with unknown tags in its own section.
    topics = tuple(ct.CreatableTopic(name=f"t{i:03d}", num_partitions=1, replication_factor=1,
                                     assignments=(), configs=()) for i in range(100))
    cls = ct.CreateTopicsRequest
    body = encode_body(cls, cls(topics=topics, timeout=datetime.timedelta(seconds=30),
                                validate_only=False))
    with_tags = body
    for topic in reversed(topics):  # from the end, so earlier offsets stay put
        at = _end_of(with_tags, encode_body(ct.CreatableTopic, topic))
        with_tags = with_section(with_tags, at, tagged((3, topic.name.encode()), (4, b"")))
    assert_decodes_like(ApiKey.CREATE_TOPICS, 7, with_tags, body)


def test_many_unknown_tags_in_one_section() -> None:
    # 1,000 fields: the count varint shrinks from 2 bytes to the 1-byte 0.
    cls = request_class(ApiKey.METADATA, 12)
    body = encode_body(cls, cls(topics=None, allow_auto_topic_creation=True,
                                include_topic_authorized_operations=False))
    section = tagged(*((100 + i, bytes([i % 256]) * (i % 5)) for i in range(1000)))
    assert_decodes_like(ApiKey.METADATA, 12, with_section(body, len(body) - 1, section), body)


def test_unknown_tag_longer_than_the_request_is_refused() -> None:
    cls = request_class(ApiKey.METADATA, 12)
    body = encode_body(cls, cls(topics=None, allow_auto_topic_creation=True,
                                include_topic_authorized_operations=False))
    cut = body[:-1] + b"\x01" + encode_uvarint(90) + encode_uvarint(100) + b"only a few bytes"
    with pytest.raises(InvalidRequestError, match="tagged field 90 longer than the request"):
        decode_request(ApiKey.METADATA, 12, cut, 0)
    # A second unknown field claimed by the count but absent.
    missing = body[:-1] + b"\x02" + tagged((90, b"ab"))[1:]
    with pytest.raises(InvalidRequestError):
        decode_request(ApiKey.METADATA, 12, missing, 0)


def test_known_tag_of_the_wrong_size_is_still_refused_next_to_unknown_ones() -> None:
    body = encode_body(fetch.FetchRequest, _fetch_request())
    # Tag 0 is cluster_id, a compact string: 4 bytes declared, 3 encoded.
    bad = body[:-1] + tagged((0, b"\x03ab" + b"z"), (900, b"new"))
    with pytest.raises(InvalidRequestError, match="tagged field 0 does not match its size"):
        decode_request(ApiKey.FETCH, 17, bad, 0)
    good = body[:-1] + tagged((0, b"\x03ab"), (900, b"new"))
    request = decode_request(ApiKey.FETCH, 17, good, 0)
    assert isinstance(request, fetch.FetchRequest)
    assert request.cluster_id == "ab"


def test_request_without_unknown_tags_is_read_in_place() -> None:
    body = memoryview(encode_body(fetch.FetchRequest, _fetch_request())).toreadonly()
    buf, offset = check_request(fetch.FetchRequest, body, 0)
    assert buf is body and offset == 0


def _header(api_key: int, version: int, section: bytes) -> bytes:
    assert request_header_version(api_key, version) == 2
    return struct.pack(">hhih", api_key, version, 9, 3) + b"cli" + section


@pytest.mark.parametrize("section", [
    tagged((0, b"\x01")),  # tags Kafka 4.x clients may send
    tagged(*((i, b"v" * i) for i in range(200))),
])
def test_unknown_header_tags_are_skipped(section: bytes) -> None:
    cls = request_class(ApiKey.METADATA, 12)
    body = encode_body(cls, cls(topics=None, allow_auto_topic_creation=True,
                                include_topic_authorized_operations=False))
    plain = _header(ApiKey.METADATA, 12, b"\x00") + body
    frame = _header(ApiKey.METADATA, 12, section) + body
    header, offset = parse_request_header(frame, 2)
    assert (header.correlation_id, header.client_id) == (9, "cli")
    assert frame[offset:] == body
    assert decode_request(ApiKey.METADATA, 12, frame, offset) == \
        decode_request(ApiKey.METADATA, 12, plain, parse_request_header(plain, 2)[1])


def test_header_tag_longer_than_the_frame_is_refused() -> None:
    frame = _header(ApiKey.METADATA, 12, b"\x01\x00\x50abc")
    with pytest.raises(InvalidRequestError, match="truncated header tagged field"):
        parse_request_header(frame, 2)
