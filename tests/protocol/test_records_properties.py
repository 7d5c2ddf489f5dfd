"""Property tests: round trips for arbitrary records, and arbitrary damage
never raising anything but the typed KafkaError subclasses."""

from __future__ import annotations

import struct

from crc32c import crc32c
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strom.errors import KafkaError
from strom.protocol.records import (
    Compression,
    Record,
    RecordSpec,
    TimestampType,
    assign_offsets,
    build_batch,
    decode_records,
    iter_batches_records,
    read_batch_header,
    scan_batches,
    validate_produced_batch,
)
from strom.protocol.records.record import (
    encode_varint,
    encode_varlong,
    read_varint,
    read_varlong,
)

NOW = 1_700_000_000_000
LIMIT = 1 << 20
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

optional_bytes = st.none() | st.binary(max_size=64)
record_specs = st.builds(
    RecordSpec,
    key=optional_bytes,
    value=st.none() | st.binary(max_size=300),
    headers=st.lists(st.tuples(st.text(max_size=10), optional_bytes), max_size=3).map(tuple),
    timestamp=st.none() | st.integers(min_value=-1, max_value=2**48),
)
codecs = st.sampled_from(list(Compression))


@PROPERTY
@given(
    specs=st.lists(record_specs, min_size=1, max_size=20),
    codec=codecs,
    base_offset=st.integers(min_value=0, max_value=2**62),
)
def test_build_decode_round_trip(
    specs: list[RecordSpec], codec: Compression, base_offset: int
) -> None:
    buf = build_batch(specs, compression=codec, base_offset=base_offset)
    header = read_batch_header(buf)
    records = decode_records(buf, header)
    base = next((s.timestamp for s in specs if s.timestamp is not None), -1)
    assert records == [
        Record(
            base_offset + i, base if s.timestamp is None else s.timestamp, s.key, s.value, s.headers
        )
        for i, s in enumerate(specs)
    ]
    produced = bytearray(buf)
    assign_offsets(produced, header, 0, -1)  # clients send base offset 0
    validated = validate_produced_batch(
        memoryview(produced),
        max_message_bytes=10**7,
        compacted=False,
        timestamp_type=TimestampType.CREATE_TIME,
        now_ms=NOW,
        timestamp_before_max_ms=2**62,
        timestamp_after_max_ms=2**62,
    )
    assert validated.max_timestamp == max(-1, *(r.timestamp for r in records))


@given(st.integers(min_value=-(2**31), max_value=2**31 - 1))
def test_varint_round_trip(value: int) -> None:
    encoded = encode_varint(value)
    assert read_varint(encoded, 0) == (value, len(encoded))
    assert read_varlong(encoded, 0) == (value, len(encoded))


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_varlong_round_trip(value: int) -> None:
    encoded = encode_varlong(value)
    assert read_varlong(encoded, 0) == (value, len(encoded))


def _recrc(buf: bytearray) -> None:
    if len(buf) >= 21:
        struct.pack_into(">I", buf, 17, crc32c(bytes(buf[21:])))


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(min_value=0), st.integers(min_value=1, max_value=255)),
    st.tuples(st.just("set"), st.integers(min_value=0), st.integers(min_value=0, max_value=255)),
    st.tuples(st.just("truncate"), st.integers(min_value=0), st.just(0)),
    st.tuples(st.just("delete"), st.integers(min_value=0), st.integers(min_value=1, max_value=8)),
    st.tuples(st.just("insert"), st.integers(min_value=0), st.integers(min_value=0, max_value=255)),
    st.tuples(st.just("varint"), st.integers(min_value=61), st.just(0xFF)),
)


def _mutate(buf: bytearray, mutations: list[tuple[str, int, int]]) -> None:
    for kind, where, arg in mutations:
        if not buf:
            return
        position = where % len(buf)
        if kind == "flip":
            buf[position] ^= arg
        elif kind in ("set", "varint"):
            buf[position] = arg
        elif kind == "truncate":
            del buf[position:]
        elif kind == "delete":
            del buf[position : position + arg]
        else:
            buf.insert(position, arg)


def _exercise(buf: bytes | bytearray) -> None:
    """Every decoder on `buf`; each either succeeds or raises KafkaError."""
    view = memoryview(buf)
    for timestamp_type in TimestampType:
        try:
            validate_produced_batch(
                view,
                max_message_bytes=10**6,
                compacted=True,
                timestamp_type=timestamp_type,
                now_ms=NOW,
                timestamp_before_max_ms=10**9,
                timestamp_after_max_ms=10**9,
                max_uncompressed_bytes=LIMIT,
            )
        except KafkaError:
            pass
    try:
        for header in scan_batches(view):
            try:
                decode_records(view, header, max_uncompressed_bytes=LIMIT)
            except KafkaError:
                pass
    except KafkaError:
        pass
    try:
        list(iter_batches_records(buf))
    except KafkaError:
        pass


@PROPERTY
@given(
    specs=st.lists(record_specs, min_size=1, max_size=8),
    codec=codecs,
    mutations=st.lists(mutation, min_size=1, max_size=4),
    fix_crc=st.booleans(),
    repeat=st.integers(min_value=1, max_value=2),
)
def test_damage_only_raises_kafka_errors(
    specs: list[RecordSpec],
    codec: Compression,
    mutations: list[tuple[str, int, int]],
    fix_crc: bool,
    repeat: int,
) -> None:
    buf = bytearray(build_batch(specs, compression=codec) * repeat)
    _mutate(buf, mutations)
    if fix_crc:
        _recrc(buf)
    _exercise(buf)


@PROPERTY
@given(
    specs=st.lists(record_specs, min_size=1, max_size=8),
    mutations=st.lists(mutation, min_size=1, max_size=4),
)
def test_damage_inside_records_with_valid_crc(
    specs: list[RecordSpec], mutations: list[tuple[str, int, int]]
) -> None:
    """Damage past the header, CRC fixed up: reaches the record walkers."""
    buf = bytearray(build_batch(specs))
    records = buf[61:]
    _mutate(records, mutations)
    buf[61:] = records
    struct.pack_into(">i", buf, 8, len(buf) - 12)
    _recrc(buf)
    _exercise(buf)


@PROPERTY
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_kafka_errors(data: bytes) -> None:
    _exercise(data)
