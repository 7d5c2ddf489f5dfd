"""Connection limits as settings (sans-I/O): Kafka's names, defaults and checks."""

from __future__ import annotations

import pytest

from strom.broker.connection_limits import (
    DEFAULT_REQUEST_MEMORY,
    ConnectionGuard,
    ConnectionLimits,
    parse_ip_overrides,
)
from strom.config import BrokerConfig
from strom.errors import InvalidConfigError


def limits(**properties: str) -> ConnectionLimits:
    return ConnectionLimits.from_config(BrokerConfig.from_properties(properties))


def test_kafka_defaults() -> None:
    default = limits()
    assert default.max_connections == default.max_connections_per_ip == 2**31 - 1
    assert default.per_ip_overrides == {}
    assert default.idle_s == 600.0
    assert default.receive_timeout_s == 30.0
    # -1: strom's own bound, as large as the largest request if that is larger.
    assert default.request_memory_bytes == DEFAULT_REQUEST_MEMORY
    assert limits(**{"socket.request.max.bytes": str(2**31 - 1)}).request_memory_bytes \
        == 2**31 - 1


def test_negative_idle_never_closes() -> None:
    assert limits(**{"connections.max.idle.ms": "-1"}).idle_s is None


def test_overrides_parse_addresses_and_names() -> None:
    parsed = parse_ip_overrides(" 127.0.0.2:200, localhost:5 ,[::1]:7")
    assert parsed["127.0.0.2"] == 200
    assert parsed["::1"] == 7
    assert parsed["127.0.0.1"] == 5  # localhost, resolved once
    assert limits(**{"max.connections.per.ip.overrides": "10.0.0.1:3"}).max_for("10.0.0.1") == 3


@pytest.mark.parametrize("text", ["127.0.0.1", "127.0.0.1:x", ":5"])
def test_malformed_overrides_are_refused(text: str) -> None:
    with pytest.raises(InvalidConfigError, match="max.connections.per.ip.overrides"):
        parse_ip_overrides(text)


def test_kafkas_consistency_checks() -> None:
    with pytest.raises(InvalidConfigError, match="must be larger or equal to "
                                                 "socket.request.max.bytes"):
        limits(**{"queued.max.request.bytes": "1000"})
    assert limits(**{"queued.max.request.bytes": "1000", "socket.request.max.bytes": "1000"}
                  ).request_memory_bytes == 1000
    with pytest.raises(InvalidConfigError, match="can be set to zero only if"):
        limits(**{"max.connections.per.ip": "0"})


class _Conn:
    peer = "x"

    def check_timeouts(self, now: float) -> bool:
        return False


def test_guard_counts_per_address_and_in_total() -> None:
    guard = ConnectionGuard(limits(**{"max.connections": "3", "max.connections.per.ip": "2",
                                      "max.connections.per.ip.overrides": "10.0.0.9:0"}))
    a, b, c, d = _Conn(), _Conn(), _Conn(), _Conn()
    assert guard.admit(a, "10.0.0.1") and guard.admit(b, "10.0.0.1")
    assert not guard.admit(c, "10.0.0.1")  # per address
    assert not guard.admit(c, "10.0.0.9")  # override of 0
    assert guard.admit(c, "10.0.0.2")
    assert not guard.admit(d, "10.0.0.3")  # in total
    guard.leave(a, "10.0.0.1")
    guard.leave(a, "10.0.0.1")  # twice is harmless
    assert guard.count == 2
    assert guard.admit(d, "10.0.0.1")
