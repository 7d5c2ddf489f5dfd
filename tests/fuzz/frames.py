"""Request frames for the fuzzer, from a seed (sans-I/O).

Four kinds, each frame with a size prefix that matches its length (a lying
prefix only makes the broker wait for bytes, which the framing tests cover):

- schema: a request of an advertised API and version, every field drawn
  from kio's schema (tests/fuzz/values.py);
- schema-mutated / captured-mutated: such a request, or one a real client
  sent (tests/fuzz/captured.frames), with a few bytes flipped, overwritten by
  boundary integers or huge varints, cut, inserted, deleted or duplicated;
- random: any api key and version around the advertised ones, random bytes.
"""

from __future__ import annotations

import dataclasses
import random
import struct
from collections.abc import Sequence
from typing import Any

from kio.serial import entity_reader

from strom.broker.router import load_handlers
from strom.protocol.api import ApiKey, request_class, request_header_version
from strom.protocol.headers import parse_request_header
from strom.protocol.request_check import check_entity
from tests.fuzz.values import encode_body, encode_frame, random_request

_I32 = struct.Struct(">i")
_BOUNDARY_INT32 = [0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, 0, 1, 0x00010000, 0x7FFFFFFE]
_HUGE_VARINTS = [b"\xff\xff\xff\xff\x0f", b"\xff\xff\xff\x7f", b"\x80\x80\x80\x80\x80",
                 b"\xfe\xff\xff\xff\x07"]
KINDS = ("schema", "schema-mutated", "captured-mutated", "random")
_WEIGHTS = (0.35, 0.30, 0.25, 0.10)


def advertised() -> list[tuple[int, int]]:
    return sorted((int(key), version) for key, reg in load_handlers().items()
                  for version in range(reg.min_version, reg.max_version + 1))


def _mutate(rng: random.Random, data: bytearray, start: int) -> None:
    """Apply one mutation to data[start:] in place."""
    if len(data) <= start:
        data += rng.randbytes(rng.randint(1, 16))
        return
    pos = rng.randrange(start, len(data))
    op = rng.randrange(8)
    if op == 0:
        data[pos] ^= 1 << rng.randrange(8)
    elif op == 1:
        data[pos] = rng.choice((0x00, 0xFF, 0x7F, 0x80, 0x01))
    elif op == 2:
        data[pos:pos + 4] = rng.choice(_BOUNDARY_INT32).to_bytes(4, "big")
    elif op == 3:
        varint = rng.choice(_HUGE_VARINTS)
        data[pos:pos + len(varint)] = varint
    elif op == 4:
        del data[pos:]
    elif op == 5:
        data[pos:pos] = rng.randbytes(rng.randint(1, 8))
    elif op == 6:
        del data[pos:pos + rng.randint(1, 8)]
    else:
        end = min(len(data), pos + rng.randint(1, 32))
        data[pos:pos] = data[pos:end]


def _header_end(frame: bytes) -> int:
    """Where the body of a well-formed frame starts (size prefix included)."""
    api_key, version = struct.unpack_from(">hh", frame, 4)
    try:
        _, offset = parse_request_header(frame[4:], request_header_version(api_key, version))
    except Exception:  # noqa: BLE001 - an unknown api key: mutate after the fixed header
        return 12
    return 4 + offset


def keep_small(api_key: int, version: int, frame: bytes) -> bytes:
    """Partition counts stay small in CreateTopics and CreatePartitions: creating
    millions of partitions is a load test (issue 13, finding 4), not a parsing one."""
    if api_key not in (ApiKey.CREATE_TOPICS, ApiKey.CREATE_PARTITIONS):
        return frame
    cls = request_class(api_key, version)
    body = memoryview(frame)[_header_end(frame):]
    try:
        check_entity(cls, body, 0)
        request: Any = entity_reader(cls)(body.toreadonly(), 0)[0]
    except Exception:  # noqa: BLE001 - the broker will not read it either
        return frame
    topics = []
    for topic in request.topics:
        changes: dict[str, Any] = {}
        if api_key == ApiKey.CREATE_TOPICS and topic.num_partitions > 16:
            changes["num_partitions"] = topic.num_partitions % 17
        if api_key == ApiKey.CREATE_PARTITIONS and topic.count > 16:
            changes["count"] = topic.count % 17
        if topic.assignments and len(topic.assignments) > 16:
            changes["assignments"] = topic.assignments[:16]
        topics.append(dataclasses.replace(topic, **changes))
    small = dataclasses.replace(request, topics=tuple(topics))
    correlation_id = _I32.unpack_from(frame, 8)[0]
    return encode_frame(api_key, version, correlation_id, encode_body(cls, small))


class FrameSource:
    """Deterministic frames from a seed; `captured` are whole frames from real clients."""

    def __init__(self, seed: int, captured: Sequence[bytes],
                 apis: Sequence[tuple[int, int]] | None = None) -> None:
        self.rng = random.Random(seed)
        self.captured = list(captured)
        self.apis = list(apis) if apis is not None else advertised()
        self._keys = sorted({k for k, _ in self.apis})

    def next(self, correlation_id: int) -> tuple[str, int, bytes]:
        """(kind, api key, frame)."""
        rng = self.rng
        kind = rng.choices(KINDS, _WEIGHTS)[0]
        if kind == "random" or (kind == "captured-mutated" and not self.captured):
            return "random", *self._random(correlation_id)
        if kind == "captured-mutated":
            frame = bytearray(rng.choice(self.captured))
            frame[8:12] = _I32.pack(correlation_id)
            # Mostly the body; sometimes the header too.
            start = _header_end(bytes(frame)) if rng.random() < 0.9 else 12
        else:
            api_key, version = rng.choice(self.apis)
            body = random_request(api_key, version, rng)
            frame = bytearray(encode_frame(api_key, version, correlation_id, body))
            if kind == "schema":
                return kind, api_key, keep_small(api_key, version, bytes(frame))
            start = _header_end(bytes(frame))
        for _ in range(rng.choice((1, 1, 1, 2, 3, 4))):
            _mutate(rng, frame, start)
        if len(frame) < 12:
            frame += bytes(12 - len(frame))
        frame[0:4] = _I32.pack(len(frame) - 4)
        api_key, version = struct.unpack_from(">hh", frame, 4)
        return kind, api_key, keep_small(api_key, version, bytes(frame))

    def _random(self, correlation_id: int) -> tuple[int, bytes]:
        rng = self.rng
        if rng.random() < 0.8:
            api_key = rng.choice(self._keys)
            version = rng.randint(-1, 20)
        else:
            api_key = rng.randint(-5, 100)
            version = rng.randint(-(2**15), 2**15 - 1)
        header = struct.pack(">hhi", api_key, version, correlation_id)
        if rng.random() < 0.7:  # a client id, as header v1+ has
            length = rng.choice((-1, 0, 4))
            header += struct.pack(">h", length) + (b"fuzz" if length == 4 else b"")
        body = rng.randbytes(rng.choice((0, 1, 4, 16, rng.randint(0, 300))))
        payload = header + body
        return api_key, _I32.pack(len(payload)) + payload
