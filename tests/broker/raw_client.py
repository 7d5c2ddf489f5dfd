"""A minimal Kafka client for tests: send one kio request, decode its response.

For APIs or versions no client library sends (or sends only in its own way):

    with RawClient(broker.bootstrap) as client:
        response = client.send(ApiKey.DESCRIBE_CLUSTER, 1,
                               {"include_cluster_authorized_operations": True})

The body is a kio request object or the version-independent dict that
`strom.protocol.messages.build` accepts (omitted fields take their defaults).
The response is the kio response object of that version.
"""

from __future__ import annotations

import io
import itertools
import socket
import ssl
import struct
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from kio.schema.request_header.v1.header import RequestHeader as RequestHeaderV1
from kio.schema.request_header.v2.header import RequestHeader as RequestHeaderV2
from kio.serial import entity_reader, entity_writer

from strom.protocol.api import (
    request_class,
    request_header_version,
    response_class,
    response_header_version,
)
from strom.protocol.messages import build
from strom.protocol.varint import read_uvarint


class RawClient:
    def __init__(self, bootstrap: str, *, client_id: str = "raw-test-client",
                 timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None) -> None:
        host, _, port = bootstrap.rpartition(":")
        sock = socket.create_connection((host, int(port)), timeout=timeout)
        # ssl_context: to an SSL listener (the handshake happens here).
        self._sock = (ssl_context.wrap_socket(sock, server_hostname=host)
                      if ssl_context is not None else sock)
        self._client_id = client_id
        self._correlation = itertools.count(1)

    def encode(self, api_key: int, version: int, body: Mapping[str, Any] | Any,
               correlation_id: int) -> bytes:
        """The request frame, size prefix included."""
        cls = request_class(api_key, version)
        message = build(cls, body)
        out = io.BytesIO()
        header_cls: Any = (RequestHeaderV2 if request_header_version(api_key, version) == 2
                           else RequestHeaderV1)
        header = header_cls(request_api_key=api_key, request_api_version=version,
                            correlation_id=correlation_id, client_id=self._client_id)
        entity_writer(header_cls)(out, header)
        entity_writer(cls)(out, message)
        payload = out.getvalue()
        return struct.pack(">i", len(payload)) + payload

    def send(self, api_key: int, version: int, body: Mapping[str, Any] | Any) -> Any:
        return self.receive(api_key, version, self.send_only(api_key, version, body))

    def send_only(self, api_key: int, version: int, body: Mapping[str, Any] | Any) -> int:
        """Send a request without waiting for its response; its correlation id."""
        correlation_id = next(self._correlation)
        self._sock.sendall(self.encode(api_key, version, body, correlation_id))
        return correlation_id

    def fileno(self) -> int:
        """The socket's (for select: whether a response has arrived)."""
        return self._sock.fileno()

    def receive(self, api_key: int, version: int, correlation_id: int) -> Any:
        """The response to the request `send_only` sent with `correlation_id`."""
        frame = self.receive_frame()
        (received,) = struct.unpack_from(">i", frame, 0)
        assert received == correlation_id, (received, correlation_id)
        offset = 4
        if response_header_version(api_key, version) >= 1:
            tags, offset = read_uvarint(frame, offset)
            for _ in range(tags):
                _, offset = read_uvarint(frame, offset)
                size, offset = read_uvarint(frame, offset)
                offset += size
        response, size = entity_reader(response_class(api_key, version))(
            memoryview(frame), offset)
        assert offset + size == len(frame), "trailing bytes after the response"
        return response

    def receive_frame(self) -> bytes:
        (size,) = struct.unpack(">i", self._receive_exactly(4))
        return self._receive_exactly(size)

    def _receive_exactly(self, n: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < n:
            chunk = self._sock.recv(n - len(chunks))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            chunks += chunk
        return bytes(chunks)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def send(bootstrap: str, api_key: int, version: int, body: Mapping[str, Any] | Any) -> Any:
    """One request on a connection of its own."""
    with RawClient(bootstrap) as client:
        return client.send(api_key, version, body)
