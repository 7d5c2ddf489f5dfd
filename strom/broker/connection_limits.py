"""Limits on client connections: how many, from where, how long idle, how slow.

Kafka's settings (KIP-402 and its SocketServer): `max.connections` and
`max.connections.per.ip` (with `max.connections.per.ip.overrides`) close a new
connection at accept once reached; `connections.max.idle.ms` closes a
connection with no bytes in or out for that long. Kafka blocks its acceptor at
`max.connections` instead of closing; strom closes, so a refused client sees
it at once and the listen backlog cannot fill with connections it will not
serve.

strom adds `strom.request.receive.timeout.ms` (Kafka has no equivalent): a
request that began arriving must be complete within it, else the connection
closes. Without it, a client trickling one byte a second (slowloris) is never
idle and holds its connection and buffer forever. 30 s is the clients' own
`request.timeout.ms` default: a request still arriving after that has been
given up by the client that sent it.

Memory held by large requests is bounded by a `RequestMemory` shared by all
connections (`queued.max.request.bytes`, see strom.protocol.framing). Kafka's
-1 means no bound there, because its JVM heap (`-Xmx1G` by default) is one;
a Python process has no such ceiling, so -1 means 1 GiB here, or
`socket.request.max.bytes` if that is larger so the largest request accepted
can always be received.

What bounds the memory of requests, then: large ones (over 64 KiB) by that
budget plus one frame's overdraft (see RequestMemory) plus the 16 MiB pool
(emptied after 5 s without a large request); small ones by each
connection's 64 KiB receive buffer and 64 requests in flight, times the
connections allowed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from strom.broker.log_limit import LogLimiter
from strom.config import BrokerConfig
from strom.errors import InvalidConfigError
from strom.protocol.framing import RequestMemory

log = logging.getLogger(__name__)

DEFAULT_REQUEST_MEMORY = 1 << 30


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int
    max_connections_per_ip: int
    per_ip_overrides: Mapping[str, int]
    idle_s: float | None  # None: never close idle connections
    receive_timeout_s: float
    request_memory_bytes: int

    @classmethod
    def from_config(cls, config: BrokerConfig) -> ConnectionLimits:
        def number(name: str) -> int:
            value = config.get(name)
            assert isinstance(value, int)
            return value

        queued = number("queued.max.request.bytes")
        max_request = number("socket.request.max.bytes")
        idle_ms = number("connections.max.idle.ms")
        per_ip = number("max.connections.per.ip")
        overrides = parse_ip_overrides(str(config.get("max.connections.per.ip.overrides") or ""))
        # Kafka's own checks (KafkaConfig.validateValues), with its messages.
        if 0 < queued < max_request:
            raise InvalidConfigError("queued.max.request.bytes must be larger or equal to "
                                     "socket.request.max.bytes")
        if per_ip == 0 and not overrides:
            raise InvalidConfigError("max.connections.per.ip can be set to zero only if "
                                     "max.connections.per.ip.overrides property is set.")
        return cls(
            max_connections=number("max.connections"),
            max_connections_per_ip=per_ip,
            per_ip_overrides=overrides,
            # As Kafka's Selector: a negative value never closes idle connections.
            idle_s=idle_ms / 1000 if idle_ms >= 0 else None,
            receive_timeout_s=number("strom.request.receive.timeout.ms") / 1000,
            request_memory_bytes=(queued if queued > 0
                                  else max(DEFAULT_REQUEST_MEMORY, max_request)),
        )

    def max_for(self, ip: str) -> int:
        return self.per_ip_overrides.get(ip, self.max_connections_per_ip)


def parse_ip_overrides(text: str) -> dict[str, int]:
    """Kafka's `host:count,ip:count` list; host names are resolved once, at start-up."""
    out: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, sep, count = item.rpartition(":")
        if not sep or not host or not count.strip().isdigit():
            raise InvalidConfigError(
                f"Invalid value {text} for configuration max.connections.per.ip.overrides: "
                f"expected host:count entries, got {item!r}")
        host = host.strip().strip("[]")
        try:
            addresses = [str(ipaddress.ip_address(host))]
        except ValueError:
            try:
                addresses = sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None)})
            except OSError as exc:
                raise InvalidConfigError(
                    f"max.connections.per.ip.overrides: cannot resolve {host}: {exc}"
                ) from None
        for address in addresses:
            out[address] = int(count)
    return out


class Guarded(Protocol):
    peer: str

    def check_timeouts(self, now: float) -> bool:
        """Close the connection if it has been idle or a request stalled too long;
        True if closed for a stalled request."""


class ConnectionGuard:
    """Counts connections per address, refuses those over the limits, and closes
    idle and stalled ones (one sweep over all connections, not a timer each)."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.memory = RequestMemory(limits.request_memory_bytes)
        self._per_ip: Counter[str] = Counter()
        self._total = 0
        self._connections: set[Guarded] = set()
        #: Lines clients can trigger, bounded per kind (connections use it too).
        self.log_limit = LogLimiter()

    @property
    def count(self) -> int:
        return self._total

    def connections(self) -> list[Guarded]:
        """The admitted connections (read by /metrics at scrape time)."""
        return list(self._connections)

    def admit(self, connection: Guarded, ip: str) -> bool:
        """Count a new connection, or refuse it (False: the caller closes it)."""
        limits = self.limits
        if self._total >= limits.max_connections:
            self._refused(f"max.connections={limits.max_connections} reached", ip)
            return False
        allowed = limits.max_for(ip)
        if self._per_ip[ip] >= allowed:
            self._refused(f"{ip} already has max.connections.per.ip={allowed}", ip)
            return False
        self._per_ip[ip] += 1
        self._total += 1
        self._connections.add(connection)
        return True

    def leave(self, connection: Guarded, ip: str) -> None:
        if connection not in self._connections:
            return
        self._connections.discard(connection)
        self._total -= 1
        self._per_ip[ip] -= 1
        if self._per_ip[ip] <= 0:
            del self._per_ip[ip]

    def _refused(self, reason: str, ip: str) -> None:
        # An attacker opening thousands of connections must not flood the log.
        self.log_limit.warning(log, "connections refused", "refused a connection from %s: %s",
                               ip, reason)

    def sweep(self, now: float) -> None:
        self.log_limit.flush()
        self.memory.trim_pool(now)
        stalled = [connection.peer for connection in list(self._connections)
                   if connection.check_timeouts(now)]
        if stalled:
            # One line a sweep, however many slowloris connections there were.
            log.info("closed %d connection(s) whose request was still incomplete after "
                     "%.0f ms (strom.request.receive.timeout.ms): %s%s", len(stalled),
                     self.limits.receive_timeout_s * 1000, ", ".join(stalled[:3]),
                     ", ..." if len(stalled) > 3 else "")

    @property
    def sweep_interval_s(self) -> float:
        # A tenth of the shortest timeout: connections close at most 10% late.
        shortest = min(self.limits.receive_timeout_s, self.limits.idle_s or float("inf"))
        return min(1.0, max(0.01, shortest / 10))

    async def run(self) -> None:
        interval = self.sweep_interval_s
        while True:
            await asyncio.sleep(interval)
            self.sweep(time.monotonic())
