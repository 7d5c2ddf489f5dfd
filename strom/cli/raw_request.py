"""One request, one response, over a plain socket: for the APIs the CLI needs
that librdkafka does not offer (AlterPartitionReassignments,
ListPartitionReassignments). The same kio codecs and header rules the broker
serves with (protocol/client_frames.py); plaintext only."""

from __future__ import annotations

import socket
import struct
from collections.abc import Mapping
from typing import Any

from strom.cli.common import ConnectError
from strom.protocol.api import request_class, response_class
from strom.protocol.client_frames import decode_response, encode_request
from strom.protocol.messages import build

#: Largest response read (a reassignment listing of many partitions fits).
MAX_RESPONSE = 64 << 20


def request(address: tuple[str, int], api_key: int, version: int, body: Mapping[str, Any],
            timeout: float) -> Any:
    """The decoded response to one request sent to `address`."""
    try:
        with socket.create_connection(address, timeout=timeout) as sock:
            return exchange(sock, api_key, version, body)
    except ValueError as exc:
        raise ConnectError(f"{address[0]}:{address[1]} sent a bad response: {exc}") from None
    except OSError as exc:
        raise ConnectError(f"cannot reach {address[0]}:{address[1]}: "
                           f"{exc.strerror or exc}") from None


def exchange(sock: socket.socket, api_key: int, version: int, body: Mapping[str, Any],
             max_response: int = MAX_RESPONSE) -> Any:
    """Send one request on `sock` and read its response (the only one in
    flight). ValueError for a response size out of bounds; OSError from the
    socket."""
    sock.sendall(encode_request(build(request_class(api_key, version), body), 1, "strom-cli"))
    (size,) = struct.unpack(">i", _receive(sock, 4))
    if not 4 <= size <= max_response:
        raise ValueError(f"bad response size {size}")
    _, response = decode_response(_receive(sock, size), response_class(api_key, version))
    return response


def _receive(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return bytes(data)


def error_name(code: int) -> str:
    from strom.errors import ErrorCode

    try:
        return ErrorCode(code).name.upper()
    except ValueError:
        return f"error {code}"
