"""ProduceRequest parser that leaves record batches in place.

kio's reader copies every partition's records into a new bytes object (about
26 us per MiB, PERFORMANCE.md) and needs a read-only buffer, after which the
broker copies again to patch offsets. This parser returns writable
memoryview slices of the received frame instead, so a batch goes from the
socket buffer to the segment file without being copied. Field for field it
matches kio's ProduceRequest for v3-v13 (tests/protocol/test_fast_produce.py).
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from strom.errors import InvalidRequestError
from strom.protocol.varint import read_uvarint

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_ACKS_TIMEOUT = struct.Struct(">hi")
FLEXIBLE_FROM = 9
TOPIC_ID_FROM = 13


# Not frozen: a frozen dataclass's __init__ sets each field through
# object.__setattr__, ~0.07 us a field; made once per request or more (issue 19).
@dataclass(slots=True)
class PartitionProduceData:
    index: int
    records: memoryview | None


@dataclass(slots=True)
class TopicProduceData:
    name: str | None
    topic_id: uuid.UUID | None
    partition_data: tuple[PartitionProduceData, ...]


@dataclass(slots=True)
class ProduceRequest:
    transactional_id: str | None
    acks: int
    timeout: int  # milliseconds
    topic_data: tuple[TopicProduceData, ...]


class _Reader:
    __slots__ = ("buf", "pos", "flexible")

    def __init__(self, buf: memoryview, pos: int, flexible: bool) -> None:
        self.buf = buf
        self.pos = pos
        self.flexible = flexible

    def need(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.buf):
            raise InvalidRequestError("truncated ProduceRequest")

    def int32(self) -> int:
        self.need(4)
        (value,) = _I32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return int(value)

    def uvarint(self) -> int:
        value, self.pos = read_uvarint(self.buf, self.pos)
        return value

    def length(self) -> int:
        """A string/bytes length; -1 for null."""
        if self.flexible:
            return self.uvarint() - 1
        self.need(2)
        (value,) = _I16.unpack_from(self.buf, self.pos)
        self.pos += 2
        return int(value)

    def string(self) -> str | None:
        n = self.length()
        if n < 0:
            if n != -1:
                raise InvalidRequestError("negative string length")
            return None
        self.need(n)
        try:
            text = str(self.buf[self.pos : self.pos + n], "utf-8")
        except UnicodeDecodeError:
            raise InvalidRequestError("string is not UTF-8") from None
        self.pos += n
        return text

    def records(self) -> memoryview | None:
        n = self.uvarint() - 1 if self.flexible else self.int32()
        if n < 0:
            if n != -1:
                raise InvalidRequestError("negative records length")
            return None
        self.need(n)
        view = self.buf[self.pos : self.pos + n]
        self.pos += n
        return view

    def array_length(self) -> int:
        n = self.uvarint() - 1 if self.flexible else self.int32()
        if n < 0:
            raise InvalidRequestError("null array where one is required")
        # Each element takes at least one byte: a cheap bound against huge counts.
        if n > len(self.buf) - self.pos:
            raise InvalidRequestError("array longer than the request")
        return n

    def skip_tagged_fields(self) -> None:
        if not self.flexible:
            return
        for _ in range(self.uvarint()):
            self.uvarint()
            size = self.uvarint()
            self.need(size)
            self.pos += size


def parse_produce_request(version: int, frame: bytes | bytearray | memoryview,
                          offset: int) -> ProduceRequest:
    """The body of a ProduceRequest at `offset` in `frame`; raises InvalidRequestError."""
    if _fast_produce is not None:
        parsed = _fast_produce(version, frame, offset)
        if parsed is not None:
            return parsed
    return parse_produce_request_python(version, frame, offset)


def parse_produce_request_python(version: int, frame: bytes | bytearray | memoryview,
                                 offset: int) -> ProduceRequest:
    """The reference parser: the C one (_produce.c) accepts what this one
    accepts with the same result, and leaves every error to it."""
    r = _Reader(memoryview(frame), offset, version >= FLEXIBLE_FROM)
    transactional_id = r.string()
    r.need(6)
    acks, timeout = _ACKS_TIMEOUT.unpack_from(r.buf, r.pos)
    r.pos += 6
    topics = []
    for _ in range(r.array_length()):
        name: str | None = None
        topic_id: uuid.UUID | None = None
        if version >= TOPIC_ID_FROM:
            r.need(16)
            topic_id = uuid.UUID(bytes=bytes(r.buf[r.pos : r.pos + 16]))
            r.pos += 16
        else:
            name = r.string()
            if name is None:
                raise InvalidRequestError("null topic name")
        partitions = []
        for _ in range(r.array_length()):
            index = r.int32()
            records = r.records()
            r.skip_tagged_fields()
            partitions.append(PartitionProduceData(index, records))
        r.skip_tagged_fields()
        topics.append(TopicProduceData(name, topic_id, tuple(partitions)))
    r.skip_tagged_fields()
    return ProduceRequest(transactional_id, acks, timeout, tuple(topics))


def _uuid(raw: bytes) -> uuid.UUID:
    return uuid.UUID(bytes=raw)


_FastProduce = Callable[[int, bytes | bytearray | memoryview, int], ProduceRequest | None]
_fast_produce: _FastProduce | None
try:  # built from _produce.c when a C compiler was there at install time
    from strom.protocol.fast._produce import parse_produce_request as _fast_produce
    from strom.protocol.fast._produce import setup_produce
except ImportError:  # pragma: no cover - installs without a compiler
    _fast_produce = None
else:
    setup_produce(ProduceRequest, TopicProduceData, PartitionProduceData, _uuid)
