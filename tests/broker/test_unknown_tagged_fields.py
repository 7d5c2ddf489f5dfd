"""Over a real socket: a request carrying tagged fields strom does not know
(in its header, at its top level, inside a nested struct) is answered exactly
like the same request without them, on the same connection, as Kafka does
(KIP-482); one whose unknown field runs past the request still costs the
sender its connection."""

from __future__ import annotations

import io
import struct
from typing import Any

from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.metadata.v12 import request as md
from kio.serial import entity_writer

from strom.protocol.api import ApiKey
from strom.protocol.varint import encode_uvarint
from strom.testing import EmbeddedBroker
from tests.wire import WireClient, metadata_request


def encode_body(cls: type[Any], value: Any) -> bytes:
    out = io.BytesIO()
    entity_writer(cls)(out, value)
    return out.getvalue()


def tagged(*fields: tuple[int, bytes]) -> bytes:
    out = encode_uvarint(len(fields))
    for tag, value in fields:
        out += encode_uvarint(tag) + encode_uvarint(len(value)) + value
    return out


def frame(api_key: int, version: int, correlation_id: int, body: bytes,
          header_tags: bytes = b"\x00") -> bytes:
    """A request frame with header v2 (client id "raw") and the given header tags."""
    payload = struct.pack(">hhih", api_key, version, correlation_id, 3) + b"raw"
    payload += header_tags + body
    return struct.pack(">i", len(payload)) + payload


def metadata_with_tags(topic: str) -> bytes:
    """Metadata v12 for `topic` with unknown tags in the topic struct and at the top level."""
    body = encode_body(md.MetadataRequest, metadata_request(topic))
    topic_bytes = encode_body(md.MetadataRequestTopic, metadata_request(topic).topics[0])
    at = body.index(topic_bytes) + len(topic_bytes) - 1
    assert body[at] == 0 and body[-1] == 0
    body = body[:at] + tagged((40, b"nested"), (41, b"")) + body[at + 1:]
    return body[:-1] + tagged(*((200 + i, b"z" * i) for i in range(50)))


def test_unknown_tags_are_skipped_as_kafka_does(broker: EmbeddedBroker, topic_name: str) -> None:
    plain = encode_body(md.MetadataRequest, metadata_request(topic_name))
    api_versions = encode_body(ApiVersionsRequest, ApiVersionsRequest(
        client_software_name="strom-tests", client_software_version="1"))
    with WireClient(broker.bootstrap) as client:
        client.send_raw(frame(ApiKey.METADATA, 12, 1, plain))
        _, expected = client.receive(ApiKey.METADATA, 12)
        client.send_raw(frame(ApiKey.API_VERSIONS, 3, 2, api_versions))
        _, expected_versions = client.receive(ApiKey.API_VERSIONS, 3)

        # Each on the same connection, pipelined: every one gets its answer.
        client.send_raw(frame(ApiKey.METADATA, 12, 3, metadata_with_tags(topic_name)))
        client.send_raw(frame(ApiKey.METADATA, 12, 4, plain,
                              header_tags=tagged((0, b"\x01"), (1, b"client-tag"), (9, b""))))
        client.send_raw(frame(ApiKey.METADATA, 12, 5, metadata_with_tags(topic_name),
                              header_tags=tagged((3, b"x" * 300))))
        client.send_raw(frame(ApiKey.API_VERSIONS, 3, 6, api_versions[:-1] + tagged((7, b"?")),
                              header_tags=tagged((2, b"h"))))
        for correlation_id in (3, 4, 5):
            assert client.receive(ApiKey.METADATA, 12) == (correlation_id, expected)
        assert client.receive(ApiKey.API_VERSIONS, 3) == (6, expected_versions)


def test_unknown_tag_past_the_end_closes_the_connection(broker: EmbeddedBroker) -> None:
    body = encode_body(md.MetadataRequest, md.MetadataRequest(
        topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False))
    too_long = body[:-1] + b"\x01" + encode_uvarint(90) + encode_uvarint(1000) + b"short"
    with WireClient(broker.bootstrap) as client:
        client.send_raw(frame(ApiKey.METADATA, 12, 1, too_long))
        assert client.is_closed_by_peer()
    with WireClient(broker.bootstrap) as client:  # the broker serves on
        client.send_raw(frame(ApiKey.METADATA, 12, 1, body))
        assert client.receive(ApiKey.METADATA, 12)[0] == 1
