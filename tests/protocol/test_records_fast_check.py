"""The C accept path of produced-batch validation (check_produced_batch in
strom/protocol/records/_walk.c) against the Python validation.

validate_produced_batch must answer exactly as validate_produced_batch_python
(the same ValidatedBatch, or the same error with the same message) on random
batches, random damage to any byte, truncation and every topic setting; the
C function itself may only accept what Python accepts, with the same result.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strom.errors import KafkaError
from strom.protocol.records import Compression, RecordSpec, TimestampType, build_batch
from strom.protocol.records.validate import (
    ValidatedBatch,
    _fast_check,
    validate_produced_batch,
    validate_produced_batch_python,
)

NOW = 1_700_000_000_000
PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
needs_fast_check = pytest.mark.skipif(_fast_check is None, reason="the C walk is not built")

optional_bytes = st.none() | st.binary(max_size=30)
record_specs = st.builds(
    RecordSpec, key=optional_bytes, value=st.none() | st.binary(max_size=120),
    headers=st.lists(st.tuples(st.text(max_size=4), optional_bytes), max_size=2).map(tuple),
    timestamp=st.none() | st.integers(min_value=NOW - 10_000, max_value=NOW + 10_000)
    | st.integers(min_value=-1, max_value=2**62),
)
damage = st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)),
                  max_size=2)
windows = st.sampled_from([2**63 - 1, 5_000, 0]) | st.integers(min_value=0, max_value=2**64)


def _outcome(fn: Any, buf: memoryview, **kwargs: Any) -> tuple[str, Any]:
    try:
        result: ValidatedBatch = fn(buf, **kwargs)
    except KafkaError as exc:
        return (type(exc).__name__, str(exc))
    return ("ok", result)


@needs_fast_check
@PROPERTY
@given(specs=st.lists(record_specs, min_size=1, max_size=6),
       producer=st.sampled_from([(-1, -1, -1), (7, 0, 0), (7, 2, 2**31 - 1), (7, 0, -1)]),
       compression=st.sampled_from([Compression.NONE] * 4 + [Compression.GZIP]),
       transactional=st.booleans(), changes=damage, header_damage=st.booleans(),
       cut=st.sampled_from([0, 0, 0, 1, 30]), extra=st.sampled_from([b"", b"", b"\x00"]),
       max_message_bytes=st.sampled_from([1_048_588, 100, 2**70]), compacted=st.booleans(),
       timestamp_type=st.sampled_from(list(TimestampType)), before=windows, after=windows)
def test_validation_answers_as_python_does(
        specs: list[RecordSpec], producer: tuple[int, int, int], compression: Compression,
        transactional: bool, changes: list[tuple[int, int]], header_damage: bool, cut: int,
        extra: bytes, max_message_bytes: int, compacted: bool, timestamp_type: TimestampType,
        before: int, after: int) -> None:
    producer_id, epoch, sequence = producer
    data = bytearray(build_batch(specs, compression=compression, producer_id=producer_id,
                                 producer_epoch=epoch, base_sequence=sequence,
                                 transactional=transactional and producer_id >= 0))
    for position, value in changes:
        # Half the damage lands in the 61-byte header, where every field is checked.
        data[position % (61 if header_damage else len(data))] = value
    data = data[: len(data) - cut] + extra
    kwargs: dict[str, Any] = dict(
        max_message_bytes=max_message_bytes, compacted=compacted,
        timestamp_type=timestamp_type, now_ms=NOW, timestamp_before_max_ms=before,
        timestamp_after_max_ms=after, max_uncompressed_bytes=1 << 20)
    buf = memoryview(data)
    assert _outcome(validate_produced_batch, buf, **kwargs) == \
        _outcome(validate_produced_batch_python, buf, **kwargs)
    assert _fast_check is not None
    accepted = _fast_check(buf, max_message_bytes, compacted,
                           timestamp_type == TimestampType.CREATE_TIME, NOW - before, NOW + after)
    if accepted is not None:
        expected = validate_produced_batch_python(buf, **kwargs)
        assert accepted[0] == expected.header
        if timestamp_type == TimestampType.CREATE_TIME:
            assert accepted[1:] == (expected.max_timestamp,
                                    expected.offset_delta_of_max_timestamp)


@needs_fast_check
@PROPERTY
@given(data=st.binary(max_size=120), compacted=st.booleans(), check_create_time=st.booleans())
def test_c_check_on_arbitrary_bytes(data: bytes, compacted: bool,
                                    check_create_time: bool) -> None:
    assert _fast_check is not None
    buf = memoryview(bytearray(data))
    accepted = _fast_check(buf, 2**31, compacted, check_create_time, -(2**63), 2**63 - 1)
    if accepted is not None:
        expected = validate_produced_batch_python(
            buf, max_message_bytes=2**31, compacted=compacted,
            timestamp_type=TimestampType.CREATE_TIME if check_create_time
            else TimestampType.LOG_APPEND_TIME,
            now_ms=0, timestamp_before_max_ms=2**63, timestamp_after_max_ms=2**63 - 1)
        assert accepted[0] == expected.header


@needs_fast_check
def test_the_c_check_takes_the_common_batch() -> None:
    # An idempotent producer's one-record batch: the fleet's request.
    batch = bytearray(build_batch([RecordSpec(value=b"v" * 1024, timestamp=NOW)],
                                  producer_id=3, producer_epoch=0, base_sequence=9))
    assert _fast_check is not None
    accepted = _fast_check(memoryview(batch), 1_048_588, False, True, NOW - 1, NOW + 1)
    assert accepted is not None
    assert accepted[1:] == (NOW, 0)
    assert accepted[0].producer_id == 3 and accepted[0].base_sequence == 9
