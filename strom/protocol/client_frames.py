"""Request frames out, response frames in: the client side of the protocol.

The broker's own requests to other brokers (broker/peer_client.py) and the
command line's few raw requests (cli/broker_reason.py) encode and decode
through these, with the same kio codecs and header rules the broker serves
with. Sans-I/O: bytes in, bytes out.
"""

from __future__ import annotations

import io
import struct
from typing import TypeVar

from kio.schema.response_header.v0.header import ResponseHeader as ResponseHeaderV0
from kio.schema.response_header.v1.header import ResponseHeader as ResponseHeaderV1
from kio.serial import entity_reader, entity_writer
from kio.static.protocol import RequestPayload, ResponsePayload

from strom.protocol.api import request_header_version, response_header_version

R = TypeVar("R", bound=ResponsePayload)

_SIZE = struct.Struct(">i")
_HEADER = struct.Struct(">hhi")
_STRING_SIZE = struct.Struct(">h")
_read_header_v0 = entity_reader(ResponseHeaderV0)
_read_header_v1 = entity_reader(ResponseHeaderV1)


def encode_request(request: RequestPayload, correlation_id: int, client_id: str) -> bytes:
    """A size-prefixed request frame: header (v1 or v2) and body."""
    api_key, version = int(request.__api_key__), int(request.__version__)
    raw_id = client_id.encode()
    header = (_HEADER.pack(api_key, version, correlation_id)
              + _STRING_SIZE.pack(len(raw_id)) + raw_id)
    if request_header_version(api_key, version) >= 2:
        header += b"\x00"  # no tagged fields
    out = io.BytesIO()
    entity_writer(type(request))(out, request)
    payload = header + out.getvalue()
    return _SIZE.pack(len(payload)) + payload


def decode_response(frame: bytes, response_type: type[R]) -> tuple[int, R]:
    """(correlation id, response) of one response frame, without its size."""
    api_key, version = int(response_type.__api_key__), int(response_type.__version__)
    # Header v0 is the correlation id; v1 adds tagged fields.
    read_header = _read_header_v0 if response_header_version(api_key, version) == 0 \
        else _read_header_v1
    header, offset = read_header(frame, 0)
    response, _ = entity_reader(response_type)(frame, offset)
    return int(header.correlation_id), response
