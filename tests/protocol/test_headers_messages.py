"""Request headers and the version-independent response builder, checked
against kio's own encoders and decoders."""

from __future__ import annotations

import io
import struct

import pytest
from kio.schema.request_header.v1.header import RequestHeader as RequestHeaderV1
from kio.schema.request_header.v2.header import RequestHeader as RequestHeaderV2
from kio.serial import entity_reader, entity_writer

from strom.errors import ErrorCode, InvalidRequestError
from strom.protocol.api import (
    ApiKey,
    known_versions,
    request_class,
    request_header_version,
    response_class,
    response_header_version,
)
from strom.protocol.headers import parse_request_header, peek_header
from strom.protocol.messages import build, decode_request, encode_response


def _kio_bytes(entity: object) -> bytes:
    out = io.BytesIO()
    entity_writer(type(entity))(out, entity)
    return out.getvalue()


@pytest.mark.parametrize("client_id", ["rdkafka", None, "", "ünïcode"])
def test_header_v1_matches_kio(client_id: str | None) -> None:
    header = RequestHeaderV1(request_api_key=3, request_api_version=12, correlation_id=77,
                             client_id=client_id)
    data = _kio_bytes(header) + b"body"
    parsed, offset = parse_request_header(data, 1)
    assert (parsed.api_key, parsed.api_version, parsed.correlation_id) == (3, 12, 77)
    assert parsed.client_id == client_id
    assert data[offset:] == b"body"


def test_header_v2_skips_tagged_fields() -> None:
    header = RequestHeaderV2(request_api_key=18, request_api_version=3, correlation_id=5,
                             client_id="c")
    raw = _kio_bytes(header)
    # Replace kio's empty tag section with one unknown tag of 3 bytes.
    with_tag = raw[:-1] + b"\x01\x07\x03abc"
    data = with_tag + b"rest"
    parsed, offset = parse_request_header(data, 2)
    assert parsed.client_id == "c"
    assert data[offset:] == b"rest"


@pytest.mark.parametrize("data", [b"", b"\x00\x03", b"\x00\x03\x00\x0c\x00\x00\x00",
                                  struct.pack(">hhih", 3, 1, 1, 10) + b"abc"])
def test_truncated_headers_raise_invalid_request(data: bytes) -> None:
    with pytest.raises(InvalidRequestError):
        parse_request_header(data, 1)


def test_peek_header() -> None:
    assert peek_header(struct.pack(">hhi", 18, 9, 42)) == (18, 9, 42)


def test_header_versions_follow_flexibility() -> None:
    assert request_header_version(ApiKey.METADATA, 8) == 1
    assert request_header_version(ApiKey.METADATA, 9) == 2
    assert response_header_version(ApiKey.METADATA, 9) == 1
    # ApiVersions responses always use header v0 (KIP-511).
    assert response_header_version(ApiKey.API_VERSIONS, 3) == 0


@pytest.mark.parametrize("version", range(3, 14))
def test_produce_header_versions_are_kios(version: int) -> None:
    # is_flexible answers Produce without loading its kio schema (issue 19).
    flexible = request_class(ApiKey.PRODUCE, version).__flexible__
    assert request_header_version(ApiKey.PRODUCE, version) == (2 if flexible else 1)
    assert response_header_version(ApiKey.PRODUCE, version) == (1 if flexible else 0)


def test_known_versions_are_kafkas() -> None:
    assert known_versions(ApiKey.PRODUCE) == (3, 13)
    assert known_versions(ApiKey.API_VERSIONS) == (0, 4)
    assert known_versions(9999) is None


@pytest.mark.parametrize("version", range(0, 14))
def test_build_metadata_response_every_version_round_trips(version: int) -> None:
    shape = {
        "throttle_time": 0,
        "brokers": [{"node_id": 1, "host": "localhost", "port": 9092, "rack": None}],
        "cluster_id": "abc",
        "controller_id": 1,
        "topics": [{"error_code": 0, "name": "t", "topic_id": None, "is_internal": False,
                    "partitions": [{"error_code": 0, "partition_index": 0, "leader_id": 1,
                                    "leader_epoch": 0, "replica_nodes": [1],
                                    "isr_nodes": [1], "offline_replicas": []}],
                    "topic_authorized_operations": -(2**31)}],
        "cluster_authorized_operations": -(2**31),
        "error_code": 0,
    }
    encoded = encode_response(ApiKey.METADATA, version, 9, shape)
    header_size = 4 if response_header_version(ApiKey.METADATA, version) == 0 else 5
    cls = response_class(ApiKey.METADATA, version)
    decoded, size = entity_reader(cls)(encoded[header_size:], 0)
    assert size == len(encoded) - header_size
    assert decoded.topics[0].name == "t"
    assert decoded.brokers[0].port == 9092
    assert decoded.topics[0].partitions[0].leader_id == 1


def test_build_rejects_missing_required_field() -> None:
    with pytest.raises(KeyError, match="brokers"):
        build(response_class(ApiKey.METADATA, 12), {"throttle_time": 0})


def test_error_codes_accept_ints() -> None:
    cls = response_class(ApiKey.API_VERSIONS, 3)
    message = build(cls, {"error_code": 35, "api_keys": [], "throttle_time": 0})
    assert message.error_code is ErrorCode.unsupported_version


def test_decode_request_ignores_trailing_bytes_rejects_garbage() -> None:
    cls = request_class(ApiKey.API_VERSIONS, 3)
    body = _kio_bytes(cls(client_software_name="x", client_software_version="1"))
    assert decode_request(ApiKey.API_VERSIONS, 3, body, 0).client_software_name == "x"
    # Kafka ignores trailing bytes, and librdkafka relies on it.
    assert decode_request(ApiKey.API_VERSIONS, 3, body + b"\x00\x00\x00", 0) is not None
    with pytest.raises(InvalidRequestError):
        decode_request(ApiKey.METADATA, 12, b"\xff\xff\xff", 0)
