"""One client connection: frames in, responses out, in request order.

Requests are decoded as they arrive and each is handled in its own task, so
pipelined produce requests are appended in order and share a group-commit
fsync; responses are written strictly in request order, coalesced into one
`writelines` per wakeup. Reading pauses while too many requests are in
flight or the transport's write buffer is full, so a client cannot make the
broker queue unbounded work (nor, by never reading, unbounded responses), and
while the shared request memory is spent. For the same reason requests are
started only while fewer than MAX_IN_FLIGHT are and the client reads: the
rest of a read waits in a backlog. The ConnectionGuard counts the
connection at accept and closes it when idle or when a request stalls
half-sent (strom.broker.connection_limits).

Fetch responses may carry views of mapped segment files (FileRegion.view):
they are handed to the transport as they are and never read here, and the
transport releases (unmaps) them once written or when the connection is lost.

Who the client is (TLS, SASL) is the ConnectionAuth's to know
(strom.broker.connection_auth); a connection on a PLAINTEXT listener has none.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from typing import cast

from strom.broker import eager
from strom.broker.client_quotas import handle_with_quotas
from strom.broker.connection_auth import ConnectionAuth
from strom.broker.connection_limits import ConnectionGuard
from strom.broker.context import BrokerServices, RequestContext
from strom.broker.faults import FaultAction, error_response
from strom.broker.handlers.api_versions import fallback_response
from strom.broker.parked import Parked, ParkedRequest
from strom.broker.router import Registration, Response
from strom.errors import InvalidRequestError, KafkaError
from strom.protocol.api import ApiKey, request_header_version
from strom.protocol.fast.fetch import Chunk
from strom.protocol.framing import FrameDecoder, FrameTooLargeError, encode_frame
from strom.protocol.headers import RequestHeader, parse_request_header, peek_header
from strom.protocol.messages import decode_request, encode_response_frame
from strom.security.principal import ANONYMOUS, KafkaPrincipal

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 64


class _Close:
    """A response slot that ends the connection once reached, after writing
    `chunks` (a last response, such as a failed SASL authentication's)."""

    def __init__(self, chunks: list[Chunk] | None = None) -> None:
        self.chunks = chunks or []


CLOSE = _Close()
Slot = list[Chunk] | None | _Close


class KafkaConnection(asyncio.BufferedProtocol):
    def __init__(self, broker: BrokerServices, registry: Mapping[int, Registration],
                 open_transports: set[asyncio.Transport], guard: ConnectionGuard) -> None:
        self._broker = broker
        self._registry = registry
        # The server's set of live transports, so shutdown can close them all.
        self._open_transports = open_transports
        max_request = broker.config.get("socket.request.max.bytes")
        assert isinstance(max_request, int)
        self._guard = guard
        self._decoder = FrameDecoder(max_request, guard.memory)
        self._admitted = False
        # Monotonic times: of the last bytes in or out, and since when the request
        # being received has been incomplete (None: between requests).
        self._last_active = time.monotonic()
        self._partial_since: float | None = None
        self._pending: collections.deque[asyncio.Future[Slot]] = collections.deque()
        #: buffer_updated is dispatching the frames of one read.
        self._reading_frames = False
        # Requests received but not started: one read can hold thousands of small
        # requests, and starting them all would build thousands of responses for a
        # client that may never read them. They start as in-flight slots free up.
        self._backlog: collections.deque[bytearray | memoryview] = collections.deque()
        self._transport: asyncio.Transport | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._closed = False
        # Set while a client quota mutes this connection (_throttle).
        self._throttle_handle: asyncio.TimerHandle | None = None
        self.peer = "?"
        self.client_host = ""
        # Set by the server: the listener's name, security protocol and, on SSL
        # listeners, how a client certificate names its principal.
        self.listener_name = "PLAINTEXT"
        self.security_protocol = "PLAINTEXT"
        self.tls_principal: Callable[[ssl.SSLObject], KafkaPrincipal] | None = None
        # Who the client is, on SSL and SASL listeners (connection_made); None:
        # ANONYMOUS, and no request waits for an authentication.
        self._auth: ConnectionAuth | None = None

    # --- asyncio.BufferedProtocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._open_transports.add(self._transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        # As Kafka reports a member's host in DescribeGroups.
        self.client_host = f"/{peer[0]}" if peer else ""
        self._ip = str(peer[0]) if peer else "?"
        if not self._guard.admit(self, self._ip):
            self._abort()
            return
        self._admitted = True
        quotas = self._broker.client_quotas
        if quotas.enabled:
            throttle_ms = quotas.connection_throttle_ms(self._ip)
            if throttle_ms > 0:
                # Over its ip's connection_creation_rate: never served, closed
                # once the throttle time has passed (Kafka's ConnectionQuotas).
                self._transport.pause_reading()
                self._reading_paused = True
                self._throttle_handle = asyncio.get_running_loop().call_later(
                    throttle_ms / 1000.0, self._transport.close)
                return
        sasl = self.security_protocol.startswith("SASL_")
        ssl_object = transport.get_extra_info("ssl_object")
        tls_principal = self.tls_principal if ssl_object is not None else None
        if sasl or tls_principal is not None:
            auth = self._auth = ConnectionAuth(self.peer, self._guard.log_limit)
            if sasl and not auth.start_sasl(self._broker, self.listener_name):
                self._abort()
            if (tls_principal is not None
                    and not auth.take_tls_principal(tls_principal, ssl_object)):
                self._abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._transport is not None:
            self._open_transports.discard(self._transport)
        for fut in self._pending:
            fut.cancel()
        self._pending.clear()
        self._backlog.clear()
        self._guard.memory.cancel_wait(self._memory_available)
        self._decoder.close()
        if self._admitted:
            self._admitted = False
            self._guard.leave(self, self._ip)
        # Its share sessions end, and their members' acquired records are
        # released (Kafka's ShareSessionCache disconnect listener).
        shares = self._broker.started_share_partitions
        if shares is not None:
            shares.connection_closed(id(self))

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._last_active = time.monotonic()
        self._update_reading()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._decoder.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        if self._closed:
            return
        decoder = self._decoder
        now = self._last_active = time.monotonic()
        try:
            frames = decoder.buffer_updated(nbytes)
        except FrameTooLargeError as exc:
            self._guard.log_limit.warning(log, "connections closed for too large requests",
                                          "closing %s: %s", self.peer, exc)
            self._abort()
            return
        if frames:
            self._partial_since = now if decoder.buffered else None
        elif self._partial_since is None:
            self._partial_since = now
        for frame in frames:
            # _can_start inline: once per request.
            if (self._backlog or self._writing_paused or len(self._pending) >= MAX_IN_FLIGHT
                    or (self._auth is not None
                        and not self._auth.allows(frame, len(self._pending)))):
                self._backlog.append(frame)
                continue
            self._reading_frames = True
            self._dispatch(frame)
            self._reading_frames = False
            if self._closed:
                return
        if self._pending and self._pending[0].done():
            # The answers of requests finished inline (eager.py), in one write
            # per read as before: one per request made librdkafka send
            # smaller produce requests and cost acks=1 2.8x its throughput.
            self._write_ready(None)
            if self._closed:
                return
        if decoder.waiting_for_memory:
            self._guard.memory.wait(self._memory_available)
        self._update_reading()

    def _memory_available(self) -> None:
        if self._closed:
            return
        if self._decoder.retry_memory():
            self._update_reading()
        else:
            self._guard.memory.wait(self._memory_available)

    def check_timeouts(self, now: float) -> bool:
        """Called by the guard's sweep: close if idle or a request stalled half-sent.
        True if closed for a stalled request (the guard logs those, one line a sweep)."""
        if self._closed:
            return False
        limits = self._guard.limits
        partial_since = self._partial_since
        # While the broker itself stopped reading (requests in flight, responses
        # unread) the rest of a request cannot arrive; waiting for request memory
        # does count, or connections holding it half-full could wait for each other.
        held_back = self._reading_paused and not self._decoder.waiting_for_memory
        if (partial_since is not None and not held_back
                and now - partial_since > limits.receive_timeout_s):
            self._abort()
            return True
        if (limits.idle_s is not None and not self._pending
                and now - self._last_active > limits.idle_s):
            # Kafka closes idle connections silently (clients reconnect as needed).
            log.debug("closing %s: idle for connections.max.idle.ms", self.peer)
            self._abort()
        return False

    # --- requests --------------------------------------------------------------

    def _can_start(self, frame: bytearray | memoryview) -> bool:
        if self._writing_paused or len(self._pending) >= MAX_IN_FLIGHT:
            return False
        return self._auth is None or self._auth.allows(frame, len(self._pending))

    def _dispatch(self, frame: bytearray | memoryview) -> None:
        loop = asyncio.get_running_loop()
        auth = self._auth
        slot: asyncio.Future[Slot]
        if auth is not None and auth.raw_tokens:
            # After SaslHandshake v0 the client sends bare SASL tokens.
            slot = loop.create_task(self._raw_token(auth, frame))
            self._pending.append(slot)
            slot.add_done_callback(self._write_ready)
            return
        try:
            api_key, api_version, correlation_id = peek_header(frame)
        except KafkaError:
            self._decoder.release(frame)
            self._abort()
            return
        if auth is not None and not auth.admits(api_key):
            self._decoder.release(frame)
            self._abort()
            return
        registration = self._registry.get(api_key)
        if registration is None:
            self._guard.log_limit.warning(log, "connections closed for unknown api keys",
                                          "closing %s: unknown api key %d", self.peer, api_key)
            slot = loop.create_future()
            slot.set_result(CLOSE)
        elif not registration.min_version <= api_version <= registration.max_version:
            slot = loop.create_future()
            if api_key == ApiKey.API_VERSIONS:
                # KIP-511: answer a too-new ApiVersions in v0 with UNSUPPORTED_VERSION
                # and our ranges, so the client can retry with a version we know.
                slot.set_result([encode_frame(fallback_response(correlation_id))])
            else:
                self._guard.log_limit.warning(
                    log, "connections closed for unsupported versions",
                    "closing %s: %s v%d is not supported", self.peer, ApiKey(api_key).name,
                    api_version)
                slot.set_result(CLOSE)
        else:
            # A small frame is a bytearray of its own (framing.py), with nothing to
            # release: no wrapper coroutine (_handle) for it, one less per request.
            # Started here, not in a task's first turn: a request that never
            # waits is answered before this callback returns (eager.py).
            # Large frames (views into the read buffer: bulk produce) keep a
            # task and its done callback: started inline, and answered by the
            # task itself, they cost acks=1 librdkafka up to 2.8x its
            # throughput (1,700-1,900 -> 620-710 MiB/s, bench/run.py
            # --only produce_acks1_rdkafka); why is not understood yet.
            parking: ParkedRequest | None = None
            if type(frame) is bytearray:
                started = eager.start(loop, self._handle_frame(registration, frame, api_version))
                if started.done() and started.exception() is None:
                    result = started.result()
                    if type(result) is ParkedRequest:
                        parking = result
                slot = (cast("asyncio.Future[Slot]", started) if parking is None
                        else parking.slot)
            else:
                slot = loop.create_task(self._handle(registration, frame, api_version))
            if auth is not None:
                auth.started(api_key, slot)
            self._pending.append(slot)
            if parking is not None:
                # Written by _unpark, from the callback that ends its wait.
                parking.parked.notify(parking)
            elif not slot.done():
                slot.add_done_callback(self._write_ready)
            elif not self._reading_frames:  # else buffer_updated writes it
                self._write_ready(slot)
            return
        self._decoder.release(frame)
        self._pending.append(slot)
        slot.add_done_callback(self._write_ready)

    async def _raw_token(self, auth: ConnectionAuth, frame: bytearray | memoryview) -> Slot:
        """One bare SASL token (SaslHandshake v0): the reply goes back as a
        bare size-prefixed frame; a refused client's connection just closes,
        as Kafka does for v0."""
        try:
            token = bytes(frame)
        finally:
            self._decoder.release(frame)
        reply = await auth.raw_token(token)
        return CLOSE if reply is None else [encode_frame(reply)]

    async def _handle(self, registration: Registration, frame: bytearray | memoryview,
                      api_version: int) -> Slot:
        try:
            # In a task: never parked (_handle_frame).
            return cast(Slot, await self._handle_frame(registration, frame, api_version))
        finally:
            # The request and every view into the frame died with _handle_frame.
            self._decoder.release(frame)

    async def _handle_frame(self, registration: Registration, frame: bytearray | memoryview,
                            api_version: int) -> Slot | ParkedRequest:
        api_key = registration.api_key
        stats = self._broker.stats
        started = time.perf_counter() if stats.enabled else 0.0
        try:
            header, offset = parse_request_header(
                frame, request_header_version(api_key, api_version)
            )
            request = decode_request(api_key, api_version, frame, offset)
        except InvalidRequestError as exc:
            self._guard.log_limit.warning(
                log, "connections closed for malformed requests",
                "closing %s: malformed %s v%d request: %s", self.peer, api_key.name,
                api_version, exc)
            return CLOSE
        # Positional, in RequestContext's field order (close_connection,
        # client_host, forwarded, principal, listener_name, security_protocol,
        # sasl, close_after_response, connection_id): keywords cost ~0.2 us
        # more, on every request. Built as on a PLAINTEXT listener, then told
        # who the client is on others: against reading the principal and sasl
        # attributes of the connection (before connection_auth.py) that costs
        # a PLAINTEXT request 38 more machine instructions, `ANONYMOUS if auth
        # is None else auth.principal` arguments 130 more (callgrind, 400k
        # contexts built).
        context = RequestContext(header, self._broker, False, self.client_host, False,
                                 ANONYMOUS, self.listener_name, self.security_protocol, None,
                                 False, id(self))
        if self._auth is not None:
            auth = self._auth
            context.principal = auth.principal
            context.sasl = auth.sasl
        fault = self._broker.faults.take(api_key)
        try:
            if fault is None or fault.action is FaultAction.DELAY:
                if fault is not None:
                    await asyncio.sleep(fault.delay_s)
                quotas = self._broker.client_quotas
                if quotas.enabled:
                    response, throttle_ms = await handle_with_quotas(
                        quotas, registration.handler, context, request, len(frame))
                    if throttle_ms > 0:
                        self._throttle(throttle_ms)
                        if stats.enabled:
                            stats.throttled(api_key, throttle_ms)
                elif registration.parking is None:
                    response = await registration.handler(context, request)
                else:
                    answer = await registration.parking(context, request)
                    if type(answer) is Parked:
                        if asyncio.current_task() is None:
                            # Still the callback that read it (eager.py): it
                            # waits parked, without a task (_dispatch).
                            return ParkedRequest(self._unpark, answer, context, header,
                                                 api_version, registration, started)
                        answer = await answer  # a task already: wait in it
                    response = answer
            elif fault.action is FaultAction.CLOSE:
                return CLOSE
            elif fault.action is FaultAction.CLOSE_AFTER:
                await registration.handler(context, request)
                return CLOSE
            elif fault.action is FaultAction.DROP:
                # Never answer: later responses on this connection wait behind
                # this one, as behind a hung broker, until the client gives up.
                await asyncio.get_running_loop().create_future()
            else:
                response = error_response(api_key, request, fault.error_code)
        except KafkaError as exc:
            if stats.enabled:
                stats.error(api_key, exc.code)
            self._guard.log_limit.warning(
                log, "connections closed for failed requests",
                "closing %s: %s v%d failed: %s", self.peer, api_key.name, api_version, exc)
            return CLOSE
        except Exception:
            log.exception("closing %s: %s v%d handler crashed", self.peer, api_key.name,
                          api_version, extra={"peer": self.peer, "api": api_key.name,
                                              "client_id": header.client_id})
            return CLOSE
        encoded = self._respond(context, header, api_version, registration, started, response)
        # Small requests only, as for eager.start in _dispatch.
        return None if (type(frame) is bytearray and type(encoded) is list
                        and self._write_first(encoded)) else encoded

    def _respond(self, context: RequestContext, header: RequestHeader, api_version: int,
                 registration: Registration, started: float, response: Response) -> Slot:
        """A handler's response as the frame to write (or CLOSE)."""
        api_key = registration.api_key
        stats = self._broker.stats
        if stats.enabled:
            # Latency and error codes for /metrics (plain counters: stats.py).
            stats.request_done(api_key, time.perf_counter() - started, response)
        if context.close_connection:
            return CLOSE
        if self._auth is not None:
            self._auth.responded()
        if response is None:
            return None
        try:
            encoded = encode_response_frame(api_key, api_version, header.correlation_id, response)
        except Exception:
            # A handler built a response its version cannot carry: a bug, named here.
            log.exception("closing %s: %s v%d response could not be encoded", self.peer,
                          api_key.name, api_version)
            return CLOSE
        if context.close_after_response:
            return _Close(encoded)
        return encoded

    def _unpark(self, parking: ParkedRequest) -> None:
        """A parked request's waits are over: its response, written now if
        every earlier response on the connection has been."""
        slot = parking.slot
        if slot.done():
            return  # the connection closed meanwhile
        try:
            response = parking.parked.finish()
        except Exception:
            log.exception("closing %s: %s v%d handler crashed", self.peer,
                          parking.registration.api_key.name, parking.api_version)
            slot.set_result(CLOSE)
        else:
            slot.set_result(self._respond(parking.context, parking.header, parking.api_version,
                                          parking.registration, parking.started, response))
        if not self._reading_frames:  # else buffer_updated writes it
            self._write_ready(slot)

    def _write_first(self, encoded: list[Chunk]) -> bool:
        """Write the response of the task running this if it is first in line
        (True): its done callback would only run in the next turn of the loop,
        a wait every acks=all request had after its fsync (eager.py)."""
        pending = self._pending
        if (not pending or self._closed or self._transport is None
                or pending[0] is not asyncio.current_task()):
            return False
        self._transport.writelines(encoded)
        self._last_active = time.monotonic()
        return True

    def _write_ready(self, _: object) -> None:
        if self._closed or self._transport is None:
            return
        out: list[Chunk] = []
        close = False
        while self._pending and self._pending[0].done():
            slot = self._pending.popleft()
            if slot.cancelled():
                close = True
                break
            exc = slot.exception()
            result = CLOSE if exc is not None else slot.result()
            if exc is not None:
                log.error("closing %s: response failed", self.peer, exc_info=exc)
            if isinstance(result, _Close):
                out.extend(result.chunks)
                close = True
                break
            if result is not None:
                out.extend(result)
        if out:
            self._transport.writelines(out)
            self._last_active = time.monotonic()
        if close:
            self._closed = True
            self._transport.close()
            for fut in self._pending:
                fut.cancel()
            self._pending.clear()
            return
        self._update_reading()

    def _update_reading(self) -> None:
        if self._transport is None or self._closed:
            return
        backlog = self._backlog
        while backlog and self._can_start(backlog[0]):
            self._dispatch(backlog.popleft())
            if self._closed:
                return
        should_pause = (self._writing_paused or len(self._pending) >= MAX_IN_FLIGHT
                        or bool(backlog) or self._decoder.waiting_for_memory
                        or self._throttle_handle is not None)
        if should_pause and not self._reading_paused:
            self._transport.pause_reading()
            self._reading_paused = True
        elif not should_pause and self._reading_paused:
            self._transport.resume_reading()
            self._reading_paused = False
            if self._partial_since is not None:
                # The broker held the rest back; the client's time starts again now.
                self._partial_since = time.monotonic()

    @property
    def principal(self) -> KafkaPrincipal:
        """Who the connection's requests run as now."""
        return ANONYMOUS if self._auth is None else self._auth.principal

    @property
    def in_flight(self) -> int:
        """Requests started and not yet answered (/metrics, at scrape time)."""
        return len(self._pending)

    @property
    def queued(self) -> int:
        """Requests received but not started (/metrics, at scrape time)."""
        return len(self._backlog)

    def _throttle(self, throttle_ms: int) -> None:
        """Stop reading from the socket for `throttle_ms` (a client quota was
        exceeded; Kafka mutes the channel once it sent the response, which is
        sent at once: KIP-219 clients also hold back by themselves)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + throttle_ms / 1000.0
        handle = self._throttle_handle
        if handle is not None:
            if handle.when() >= until:
                return
            handle.cancel()
        self._throttle_handle = loop.call_at(until, self._end_throttle)
        self._update_reading()

    def _end_throttle(self) -> None:
        self._throttle_handle = None
        self._update_reading()

    def _abort(self) -> None:
        self._closed = True
        if self._transport is not None:
            self._transport.abort()
        for fut in self._pending:
            fut.cancel()
        self._pending.clear()
