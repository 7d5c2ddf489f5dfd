"""The C record walk (strom/protocol/records/_walk.c) against the Python one.

The C walk may only say "valid, with these maxima" when the Python walk
returns exactly those maxima and no error; in every other case it must
answer None (the Python walk then raises or reports). Checked on random
batches, on random damage to them, and on arbitrary bytes.
"""

from __future__ import annotations

import shutil
import sysconfig

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strom.errors import InvalidRecordError
from strom.protocol.records import RecordSpec, build_batch
from strom.protocol.records.batch import BATCH_HEADER_SIZE, read_batch_header
from strom.protocol.records.validate import _fast_walk, _walk_records

NOW = 1_700_000_000_000
PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

optional_bytes = st.none() | st.binary(max_size=40)
record_specs = st.builds(
    RecordSpec,
    key=optional_bytes,
    value=st.none() | st.binary(max_size=200),
    headers=st.lists(st.tuples(st.text(max_size=6), optional_bytes), max_size=3).map(tuple),
    timestamp=st.none() | st.integers(min_value=-1, max_value=2**62)
    | st.integers(min_value=NOW - 10_000, max_value=NOW + 10_000),
)
bounds = st.integers(min_value=-(2**70), max_value=2**70) | st.integers(
    min_value=NOW - 20_000, max_value=NOW + 20_000)
damage = st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)),
                  max_size=3)


def _python_walk(data: bytes, count: int, base_timestamp: int, compacted: bool,
                 check_create_time: bool, earliest: int, latest: int) -> tuple[int, int] | None:
    try:
        max_timestamp, max_index, errors, _ = _walk_records(
            data, count, base_timestamp=base_timestamp, log_append_time=None,
            compacted=compacted, check_create_time=check_create_time,
            earliest=earliest, latest=latest)
    except InvalidRecordError:
        return None
    return None if errors else (max_timestamp, max_index)


needs_fast_walk = pytest.mark.skipif(_fast_walk is None, reason="the C walk is not built")


def test_the_c_walk_is_built_where_a_compiler_is() -> None:
    # Installs without a compiler fall back to Python; where one exists (CI),
    # a build failure must not pass silently.
    if shutil.which(sysconfig.get_config_var("CC").split()[0] or "cc") is None:
        pytest.skip("no C compiler here")
    assert _fast_walk is not None


@needs_fast_walk
@PROPERTY
@given(specs=st.lists(record_specs, min_size=1, max_size=12), compacted=st.booleans(),
       check_create_time=st.booleans(), earliest=bounds, latest=bounds, damage=damage,
       count_shift=st.sampled_from([0, 0, 0, -1, 1]), cut=st.integers(min_value=0, max_value=4))
def test_c_walk_accepts_exactly_what_python_accepts(
    specs: list[RecordSpec], compacted: bool, check_create_time: bool, earliest: int,
    latest: int, damage: list[tuple[int, int]], count_shift: int, cut: int,
) -> None:
    batch = build_batch(specs)
    header = read_batch_header(batch)
    data = bytearray(batch[BATCH_HEADER_SIZE:])
    for position, value in damage:
        data[position % len(data)] = value
    records = bytes(data[: len(data) - cut])
    count = header.records_count + count_shift
    args = (records, count, header.base_timestamp, compacted, check_create_time,
            earliest, latest)
    assert _fast_walk is not None
    assert _fast_walk(*args) == _python_walk(*args)
    assert _fast_walk(memoryview(records), *args[1:]) == _python_walk(*args)


@needs_fast_walk
@PROPERTY
@given(data=st.binary(max_size=64), count=st.integers(min_value=-2, max_value=10),
       base_timestamp=st.integers(min_value=-(2**63), max_value=2**63 - 1),
       compacted=st.booleans(), check_create_time=st.booleans())
def test_c_walk_on_arbitrary_bytes(data: bytes, count: int, base_timestamp: int,
                                   compacted: bool, check_create_time: bool) -> None:
    args = (data, count, base_timestamp, compacted, check_create_time, -(2**63), 2**63 - 1)
    assert _fast_walk is not None
    assert _fast_walk(*args) == _python_walk(*args)


@needs_fast_walk
def test_c_walk_falls_back_on_timestamp_overflow() -> None:
    # base + delta past int64: Python's integers compute it, C hands it over.
    batch = build_batch([RecordSpec(value=b"v", timestamp=2**62),
                         RecordSpec(value=b"w", timestamp=2**62 + 5)])
    header = read_batch_header(batch)
    records = batch[BATCH_HEADER_SIZE:]
    near_max = 2**63 - 3
    args = (records, 2, near_max, False, False, 0, 0)
    assert _python_walk(*args) is not None
    assert _fast_walk is not None and _fast_walk(*args) is None
    assert _fast_walk(records, 2, header.base_timestamp, False, False, 0, 0) == \
        _python_walk(records, 2, header.base_timestamp, False, False, 0, 0)
