"""Lines clients can trigger are bounded per kind (issue 13 follow-up, found by the
fuzzer: one WARNING per malformed request, 501,000 lines per million frames)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from kio.schema.api_versions.v3.request import ApiVersionsRequest

from strom.broker.log_limit import LogLimiter
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from tests.process import StromProcess
from tests.wire import WireClient

# Metadata v12 cut short in its topics array: malformed, the connection closed.
TRUNCATED = bytes.fromhex("0000000c" "0003000c" "00000001" "000163" "00" "05")


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_first_warning_then_one_summary_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    limiter = LogLimiter(interval_s=10.0, clock=clock)
    log = logging.getLogger("test.log_limit")
    caplog.set_level(logging.INFO, logger="test.log_limit")
    for i in range(1000):
        limiter.warning(log, "things", "thing %d from %s", i, "peer")
        limiter.flush()
    assert [r.getMessage() for r in caplog.records] == ["thing 0 from peer"]
    clock.now += 10
    limiter.flush()
    limiter.flush()
    assert caplog.records[-1].getMessage() == \
        "999 more things in the last 10 s (the last: thing 999 from peer)"
    assert caplog.records[-1].levelno == logging.WARNING
    assert len(caplog.records) == 2
    # Another kind has its own first line.
    limiter.warning(log, "others", "other")
    assert caplog.records[-1].getMessage() == "other"
    # A kind quiet for a whole interval is news again.
    clock.now += 10
    limiter.flush()
    clock.now += 10
    limiter.flush()
    limiter.warning(log, "things", "thing again")
    assert caplog.records[-1].getMessage() == "thing again"
    assert len(caplog.records) == 4


@pytest.fixture
def strom(tmp_path: Path) -> Iterator[StromProcess]:
    process = StromProcess(tmp_path / "data")
    process.start()
    try:
        yield process
    finally:
        process.stop()


def test_malformed_requests_log_a_bounded_number_of_lines(strom: StromProcess) -> None:
    for _ in range(200):
        with WireClient(strom.bootstrap) as client:
            client.send_raw(TRUNCATED)
            assert client.is_closed_by_peer()
    with WireClient(strom.bootstrap) as other:
        response = other.request(ApiKey.API_VERSIONS, 3, ApiVersionsRequest(
            client_software_name="t", client_software_version="1"))
        assert response.error_code == ErrorCode.none
    lines = [line for line in strom.log_path.read_text().splitlines() if "closing " in line
             or "connections closed" in line]
    # The first at WARNING; at most one summary per 10 s after it.
    assert 1 <= len(lines) <= 3, lines
    assert "WARNING" in lines[0] and "127.0.0.1" in lines[0]
