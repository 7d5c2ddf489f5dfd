"""A small asyncio Kafka client for requests from this broker to another one.

Kafka's brokers talk to each other over the Kafka protocol itself (the
broker-to-controller channel, replica fetchers); so does strom. Requests are
kio entities encoded with the same codecs the broker serves with; each peer
gets one connection, reused, with requests pipelined and matched to their
responses by correlation id (Kafka answers a connection's requests in order,
the ids guard against a confused peer).

A failed connection (refused, reset, closed) fails every request waiting on
it with NetworkError and is dropped; the next request connects again. A
request unanswered within its timeout raises RequestTimedOutError and closes
the connection, as Kafka's NetworkClient does: a late answer must not be
mistaken for the next one, and a stuck peer is better found out by a fresh
connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable
from typing import TypeVar

from kio.static.protocol import RequestPayload, ResponsePayload

from strom.cluster.image import BrokerInfo
from strom.errors import NetworkError, RequestTimedOutError
from strom.protocol.client_frames import decode_response, encode_request
from strom.security.inter_broker import PLAINTEXT_PEERS, PeerSecurity

log = logging.getLogger(__name__)

R = TypeVar("R", bound=ResponsePayload)

_SIZE = struct.Struct(">i")
#: Largest response frame accepted from a peer (Kafka's fetch.max.bytes is 50 MiB;
#: a replica fetch answer fits).
MAX_RESPONSE_BYTES = 100 * 1024 * 1024


class _Connection:
    """One connection to one peer: pipelined requests, one reader task."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 address: tuple[str, int]) -> None:
        self.address = address
        self._reader = reader
        self._writer = writer
        # correlation id -> (decoder of its response frame, its caller's future)
        self._pending: dict[int, tuple[Callable[[bytes], ResponsePayload],
                                       asyncio.Future[ResponsePayload]]] = {}
        self._correlation = 0
        self._closed = False
        self._reading = asyncio.get_running_loop().create_task(
            self._read_responses(), name=f"peer-{address[0]}:{address[1]}")

    @property
    def closed(self) -> bool:
        return self._closed

    async def send(self, request: RequestPayload, response_type: type[R], client_id: str,
                   timeout: float) -> R:
        if self._closed:
            raise NetworkError(f"connection to {self._where} closed")
        self._correlation = (self._correlation + 1) & 0x7FFFFFFF
        correlation_id = self._correlation
        future: asyncio.Future[ResponsePayload] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = (
            lambda frame: decode_response(frame, response_type)[1], future)
        try:
            self._writer.write(encode_request(request, correlation_id, client_id))
            await self._writer.drain()
            response = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            self.close(RequestTimedOutError(f"no answer from {self._where} in {timeout}s"))
            raise RequestTimedOutError(
                f"{type(request).__name__} to {self._where} timed out after {timeout}s"
            ) from None
        except OSError as exc:
            self.close(NetworkError(f"{self._where}: {exc}"))
            raise NetworkError(f"{type(request).__name__} to {self._where}: {exc}") from None
        finally:
            self._pending.pop(correlation_id, None)
        assert isinstance(response, response_type)
        return response

    @property
    def _where(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    async def _read_responses(self) -> None:
        failure: Exception = NetworkError(f"connection to {self._where} closed by the peer")
        try:
            while True:
                (size,) = _SIZE.unpack(await self._reader.readexactly(4))
                if not 0 <= size <= MAX_RESPONSE_BYTES:
                    failure = NetworkError(f"{self._where} sent a frame of {size} bytes")
                    break
                frame = await self._reader.readexactly(size)
                (correlation_id,) = _SIZE.unpack_from(frame, 0)
                entry = self._pending.get(correlation_id)
                if entry is None:
                    continue  # its caller gave up (the connection then closes)
                decode, future = entry
                try:
                    response = decode(frame)
                except Exception as exc:  # a bad frame from the peer: fail this connection
                    failure = NetworkError(f"undecodable response from {self._where}: {exc}")
                    break
                if not future.done():
                    future.set_result(response)
        except (asyncio.IncompleteReadError, OSError) as exc:
            if not isinstance(exc, asyncio.IncompleteReadError):
                failure = NetworkError(f"{self._where}: {exc}")
        self.close(failure)

    def close(self, failure: Exception | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(failure or NetworkError(f"connection to {self._where} "
                                                             "closed"))
        if asyncio.current_task() is not self._reading:
            self._reading.cancel()

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._reading
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


class PeerClient:
    """Requests to other brokers, one reused connection per peer."""

    def __init__(self, node_id: int, *, request_timeout: float = 30.0,
                 connect_timeout: float = 10.0,
                 security: PeerSecurity = PLAINTEXT_PEERS) -> None:
        self.client_id = f"strom-broker-{node_id}"
        # Which of a peer's listeners to dial, and how (TLS, SASL).
        self.security = security
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self._connections: dict[int, _Connection] = {}
        self._connecting: dict[int, asyncio.Lock] = {}
        self._closed = False

    async def request(self, peer: BrokerInfo, request: RequestPayload,
                      response_type: type[R], *, timeout: float | None = None) -> R:
        """Send `request` to `peer` and return its response. Raises
        NetworkError (cannot connect, connection lost) or RequestTimedOutError."""
        if (int(request.__api_key__), int(request.__version__)) != (
                int(response_type.__api_key__), int(response_type.__version__)):
            raise TypeError(f"{type(request).__name__} v{request.__version__} is not answered "
                            f"by {response_type.__name__} v{response_type.__version__}")
        connection = await self._connection(peer)
        return await connection.send(request, response_type, self.client_id,
                                     self.request_timeout if timeout is None else timeout)

    async def _connection(self, peer: BrokerInfo) -> _Connection:
        if self._closed:
            raise NetworkError("the broker is shutting down")
        security = self.security
        address = peer.endpoint(security.listener_name)
        if address is None:
            raise NetworkError(f"broker {peer.node_id} has no {security.listener_name} listener "
                               "(inter.broker.listener.name)")
        lock = self._connecting.setdefault(peer.node_id, asyncio.Lock())
        async with lock:  # one connection per peer, even when asked concurrently
            existing = self._connections.get(peer.node_id)
            if existing is not None and not existing.closed and existing.address == address:
                return existing
            if existing is not None:  # lost, or the peer re-registered elsewhere
                existing.close()
            try:
                reader, writer = await asyncio.wait_for(
                    self._open(address), self.connect_timeout)
            except TimeoutError:
                raise NetworkError(f"connecting to broker {peer.node_id} at "
                                   f"{address[0]}:{address[1]} timed out") from None
            except OSError as exc:  # ssl.SSLError (a refused certificate) too
                raise NetworkError(f"cannot connect to broker {peer.node_id} at "
                                   f"{address[0]}:{address[1]}: {exc}") from None
            connection = self._connections[peer.node_id] = _Connection(reader, writer, address)
            return connection

    async def _open(self, address: tuple[str, int]
                    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        context = self.security.ssl_context
        reader, writer = await asyncio.open_connection(
            *address, ssl=context, server_hostname=address[0] if context else None)
        if self.security.authenticate is not None:
            try:
                await self.security.authenticate(reader, writer)
            except BaseException:
                writer.close()
                raise
        return reader, writer

    async def close(self) -> None:
        self._closed = True
        connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            connection.close()
        for connection in connections:
            await connection.wait_closed()
