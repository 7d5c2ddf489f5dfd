"""A minimal raw Kafka client for tests that need exact bytes on the wire:
bad input, pipelining, versions a client library would not send."""

from __future__ import annotations

import datetime
import io
import socket
import struct
from typing import Any

from kio.schema.metadata.v12 import request as md
from kio.schema.produce.v9 import request as pr
from kio.serial import entity_reader, entity_writer

from strom.protocol.api import (
    ApiKey,
    request_class,
    request_header_version,
    response_class,
    response_header_version,
)
from strom.protocol.messages import build


def encode_request(api_key: int, version: int, correlation_id: int, body: Any,
                   client_id: str | None = "strom-tests") -> bytes:
    header = struct.pack(">hhi", api_key, version, correlation_id)
    if request_header_version(api_key, version) >= 1:
        if client_id is None:
            header += struct.pack(">h", -1)
        else:
            raw = client_id.encode()
            header += struct.pack(">h", len(raw)) + raw
    if request_header_version(api_key, version) >= 2:
        header += b"\x00"
    out = io.BytesIO()
    entity_writer(request_class(api_key, version))(out, body)
    payload = header + out.getvalue()
    return struct.pack(">i", len(payload)) + payload


class WireClient:
    def __init__(self, bootstrap: str, timeout: float = 10.0) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self._correlation = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> WireClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, api_key: int, version: int, body: Any) -> int:
        self._correlation += 1
        self.send_raw(encode_request(api_key, version, self._correlation, body))
        return self._correlation

    def read_frame(self) -> bytes:
        size = struct.unpack(">i", self._read_exact(4))[0]
        return self._read_exact(size)

    def _read_exact(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = self.sock.recv(n)
            if not chunk:
                raise ConnectionError("connection closed by broker")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def receive(self, api_key: int, version: int) -> tuple[int, Any]:
        """(correlation id, decoded response) of the next response."""
        frame = self.read_frame()
        (correlation_id,) = struct.unpack_from(">i", frame, 0)
        offset = 4 if response_header_version(api_key, version) == 0 else 5
        response, _ = entity_reader(response_class(api_key, version))(frame[offset:], 0)
        return correlation_id, response

    def request(self, api_key: int, version: int, body: Any) -> Any:
        correlation_id = self.send(api_key, version, body)
        got, response = self.receive(api_key, version)
        assert got == correlation_id
        return response

    def is_closed_by_peer(self, timeout: float = 10.0) -> bool:
        """True once the broker has closed the connection (reads EOF)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False


def call(client: WireClient, api: ApiKey, version: int, body: dict[str, Any]) -> Any:
    """Send `api` at `version` with the fields in `body` (as the schema names them);
    the response."""
    return client.request(api, version, build(request_class(api, version), body))


def metadata_request(topic: str) -> md.MetadataRequest:
    """Metadata v12 for one topic, auto-creating it."""
    return md.MetadataRequest(topics=(md.MetadataRequestTopic(name=topic, topic_id=None),),
                              allow_auto_topic_creation=True,
                              include_topic_authorized_operations=False)


def produce_request(topic: str, records: bytes, acks: int = 1,
                    partition: int = 0) -> pr.ProduceRequest:
    """Produce v9 of one batch to one partition."""
    return pr.ProduceRequest(
        transactional_id=None, acks=acks, timeout=datetime.timedelta(seconds=5),
        topic_data=(pr.TopicProduceData(name=topic, partition_data=(
            pr.PartitionProduceData(index=partition, records=records),)),),
    )
