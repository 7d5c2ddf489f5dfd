"""Client quota enforcement (Kafka's ClientQuotaManager, ClientRequestQuotaManager
and ControllerMutationQuotaManager), over the sans-I/O model of
strom/security/quotas.py.

The connection asks `ClientQuotaManager.client(...)` for each request; with no
quota in the metadata image (`enabled` False) it asks nothing, so a broker
without quotas pays one attribute test per request. Otherwise a client's
resolved quotas are cached per (user, client id) until the image's quotas
change; sensors keep their samples across such changes and take the new bound.

What is recorded, as Kafka:
- producer_byte_rate: the size of each Produce request, before it is handled;
- consumer_byte_rate: the size of each consumer Fetch response; a fetch over
  the quota is answered empty (its bytes taken back) and its max_bytes is
  capped at what the quota allows in (samples - 1) windows;
- request_percentage: the time the request's handler ran on the event loop
  (strom's request thread), as a percentage of one second, the throttle
  bounded by one window; ApiVersions, SASL and broker-to-broker requests are
  exempt;
- controller_mutation_rate: partitions created or deleted (CreateTopics,
  CreatePartitions, DeleteTopics), on the controller, in a token bucket.
The response carries the largest throttle time and the connection stops
reading for that long (connection.py).
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any

from strom.clock import Clock
from strom.cluster.image import MetadataImage, QuotaEntity
from strom.cluster.store import MetadataStore
from strom.config import BrokerConfig
from strom.errors import ThrottlingQuotaExceededError
from strom.protocol.api import ApiKey
from strom.security import quotas as q

SASL_AUTHENTICATE = 36

#: Requests never throttled by request_percentage (Kafka: ApiVersions and
#: SASL before authentication, cluster actions between brokers).
REQUEST_QUOTA_EXEMPT = frozenset({
    ApiKey.API_VERSIONS, ApiKey.SASL_HANDSHAKE, SASL_AUTHENTICATE, ApiKey.ENVELOPE,
    ApiKey.ALTER_PARTITION, ApiKey.ALLOCATE_PRODUCER_IDS, ApiKey.WRITE_TXN_MARKERS,
})

#: Sensors idle this long are dropped (Kafka's inactive sensor expiration, 1 hour).
SENSOR_EXPIRY_MS = 3_600_000


@dataclass(slots=True)
class ClientQuotas:
    """One client's sensors; None where no quota applies."""

    produce: q.QuotaSensor | None
    fetch: q.QuotaSensor | None
    request: q.QuotaSensor | None
    mutation: q.TokenBucket | None
    #: request_percentage throttles are bounded by one window (Kafka).
    max_request_throttle_ms: int

    @property
    def empty(self) -> bool:
        return (self.produce is None and self.fetch is None and self.request is None
                and self.mutation is None)


class ClientQuotaManager:
    def __init__(self, metadata: MetadataStore, config: BrokerConfig, clock: Clock) -> None:
        self._clock = clock
        self._windows = q.WindowConfig(_int(config, "quota.window.num", 11),
                                       1000 * _int(config, "quota.window.size.seconds", 1))
        self._controller_windows = q.WindowConfig(
            _int(config, "controller.quota.window.num", 11),
            1000 * _int(config, "controller.quota.window.size.seconds", 1))
        self._quotas = metadata.image.client_quotas
        #: Any client quota at all: the one test a request pays without quotas.
        self.enabled = bool(self._quotas)
        self._clients: dict[tuple[str, str], ClientQuotas | None] = {}
        self._sensors: dict[tuple[str, q.SensorKey], q.QuotaSensor] = {}
        self._buckets: dict[q.SensorKey, q.TokenBucket] = {}
        self._created = 0
        self._ip_quotas = _ip_quotas(self._quotas)
        self._ip_sensors: dict[str, q.QuotaSensor] = {}
        metadata.subscribe(self._on_image)

    def _on_image(self, old: MetadataImage, new: MetadataImage) -> None:
        if new.client_quotas is not self._quotas:
            self._quotas = new.client_quotas
            self.enabled = bool(self._quotas)
            self._clients.clear()
            self._ip_quotas = _ip_quotas(self._quotas)

    def now_ms(self) -> int:
        return int(self._clock.monotonic() * 1000)

    def client(self, user: str, client_id: str) -> ClientQuotas | None:
        """The quotas of a client (user principal name, client id); None: none apply."""
        key = (user, client_id)
        try:
            return self._clients[key]
        except KeyError:
            pass
        now = self.now_ms()
        if len(self._clients) > 10_000:
            self._clients.clear()
        found = ClientQuotas(
            self._sensor(q.PRODUCER_BYTE_RATE, user, client_id, now),
            self._sensor(q.CONSUMER_BYTE_RATE, user, client_id, now),
            self._sensor(q.REQUEST_PERCENTAGE, user, client_id, now),
            self._bucket(user, client_id, now),
            self._windows.window_ms)
        result = None if found.empty else found
        self._clients[key] = result
        return result

    def _sensor(self, key: str, user: str, client_id: str, now: int) -> q.QuotaSensor | None:
        resolved = q.resolve(self._quotas, key, user, client_id)
        if resolved is None:
            return None
        shared, bound = resolved
        sensor = self._sensors.get((key, shared))
        if sensor is None:
            self._expire(now)
            sensor = self._sensors[(key, shared)] = q.QuotaSensor(bound, self._windows, now)
        sensor.bound = bound
        return sensor

    def _bucket(self, user: str, client_id: str, now: int) -> q.TokenBucket | None:
        resolved = q.resolve(self._quotas, q.CONTROLLER_MUTATION_RATE, user, client_id)
        if resolved is None:
            return None
        shared, bound = resolved
        bucket = self._buckets.get(shared)
        if bucket is None:
            self._expire(now)
            bucket = self._buckets[shared] = q.TokenBucket(bound, self._controller_windows, now)
        bucket.bound = bound
        return bucket

    def _expire(self, now: int) -> None:
        """Drop idle sensors now and then, so many short-lived client ids do not
        pile up (a cached client keeps its sensor objects alive anyway)."""
        self._created += 1
        if self._created % 1000:
            return
        for key in [k for k, s in self._sensors.items()
                    if now - s.last_used_ms > SENSOR_EXPIRY_MS]:
            del self._sensors[key]
        for shared in [k for k, b in self._buckets.items()
                       if now - b.last_used_ms > SENSOR_EXPIRY_MS]:
            del self._buckets[shared]

    # --- connection_creation_rate ----------------------------------------------------

    def connection_throttle_ms(self, ip: str) -> int:
        """Count a new connection from `ip`; over its connection_creation_rate
        (/ips/<ip>, else /ips/<default>) the time after which Kafka closes it
        unserved (ConnectionQuotas: such a connection is not counted)."""
        try:
            address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = \
                ipaddress.ip_address(ip)
        except ValueError:
            address = None
        bound = self._ip_quotas.get(address) if address is not None else None
        if bound is None:
            bound = self._ip_quotas.get(None)
        if bound is None:
            return 0
        now = self.now_ms()
        sensor = self._ip_sensors.get(ip)
        if sensor is None:
            if len(self._ip_sensors) > 10_000:
                self._ip_sensors = {k: v for k, v in self._ip_sensors.items()
                                    if now - v.last_used_ms <= SENSOR_EXPIRY_MS}
            sensor = self._ip_sensors[ip] = q.QuotaSensor(bound, self._windows, now)
        sensor.bound = bound
        throttle = sensor.record(1.0, now, self._windows.window_ms)
        if throttle > 0:
            sensor.unrecord(1.0, now)
        return throttle

    # --- controller_mutation_rate ----------------------------------------------------

    def mutation_quota(self, user: str, client_id: str, strict: bool) -> MutationQuota:
        client = self.client(user, client_id) if self.enabled else None
        return MutationQuota(None if client is None else client.mutation, strict, self)


class MutationQuota:
    """Partitions mutated by one CreateTopics / CreatePartitions / DeleteTopics
    (Kafka's Strict/PermissiveControllerMutationQuota): strict (the versions
    that know THROTTLING_QUOTA_EXCEEDED) refuses a topic once the bucket is
    empty; permissive only throttles."""

    def __init__(self, bucket: q.TokenBucket | None, strict: bool,
                 manager: ClientQuotaManager) -> None:
        self._bucket = bucket
        self._strict = strict
        self._manager = manager
        self._throttle_ms = 0
        self._at_ms = 0

    def record(self, partitions: int) -> None:
        """Count a topic's partitions; ThrottlingQuotaExceededError (strict) if
        the quota was already spent."""
        bucket = self._bucket
        if bucket is None:
            return
        now = self._manager.now_ms()
        if self._strict:
            throttle = bucket.throttle_ms(now)
            if throttle > 0:
                self._throttle_ms, self._at_ms = throttle, now
                raise ThrottlingQuotaExceededError(
                    "The throttling quota has been exceeded.")
        throttle = bucket.record(partitions, now)
        if throttle > 0:
            self._throttle_ms, self._at_ms = throttle, now

    def throttle_time_ms(self) -> int:
        """The throttle for the response, less the time since it was measured."""
        if not self._throttle_ms:
            return 0
        return max(0, self._throttle_ms - (self._manager.now_ms() - self._at_ms))


# --- request time --------------------------------------------------------------------


class TimedHandler:
    """Runs a handler coroutine and adds up the time of its steps on the event
    loop, not the time it waits (Kafka's request thread time: a fetch waiting
    for data costs nothing)."""

    __slots__ = ("_awaitable", "elapsed_ns")

    def __init__(self, awaitable: Awaitable[Any]) -> None:
        self._awaitable = awaitable
        self.elapsed_ns = 0

    def __await__(self) -> Generator[Any, Any, Any]:
        coro = self._awaitable.__await__()
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            started = time.perf_counter_ns()
            try:
                if to_throw is not None:
                    yielded = coro.throw(to_throw)
                else:
                    yielded = coro.send(to_send)
            except StopIteration as stop:
                self.elapsed_ns += time.perf_counter_ns() - started
                return stop.value
            except BaseException:
                self.elapsed_ns += time.perf_counter_ns() - started
                raise
            self.elapsed_ns += time.perf_counter_ns() - started
            try:
                to_send, to_throw = (yield yielded), None
            except BaseException as exc:  # noqa: BLE001 - passed on to the handler
                to_send, to_throw = None, exc


Handler = Callable[[Any, Any], Awaitable[Any]]


async def handle_with_quotas(manager: ClientQuotaManager, handler: Handler, ctx: Any,
                             request: Any, request_size: int) -> tuple[Any, int]:
    """Run `handler` under the client's quotas: its response with Kafka's
    throttle time in it, and that time in ms (the connection stops reading
    for it). `ctx` is the RequestContext (typed loosely: this module sits
    below broker.context)."""
    api_key = ctx.header.api_key
    client = manager.client(ctx.principal.name, ctx.header.client_id or "")
    if client is None:
        return await handler(ctx, request), 0
    throttle = 0
    fetch = None
    # A follower's Fetch is replication, never throttled (Kafka: sendResponseExemptThrottle).
    follower = api_key == ApiKey.FETCH and not _from_consumer(ctx, request)
    if api_key == ApiKey.PRODUCE and client.produce is not None:
        throttle = client.produce.record(request_size, manager.now_ms())
    elif api_key == ApiKey.FETCH and client.fetch is not None and not follower:
        fetch = client.fetch
        # No more in one response than the quota allows over the span (Kafka's
        # getMaxValueInQuotaWindow), so one fetch cannot earn a long throttle.
        cap = max(int(fetch.max_in_window()), 1)
        if cap < request.max_bytes:
            request = dataclasses.replace(request, max_bytes=cap)
    request_throttle = 0
    if client.request is not None and api_key not in REQUEST_QUOTA_EXEMPT and not follower:
        timed = TimedHandler(handler(ctx, request))
        response = await timed
        request_throttle = client.request.record(request_percentage(timed.elapsed_ns),
                                                 manager.now_ms(),
                                                 client.max_request_throttle_ms)
    else:
        response = await handler(ctx, request)
    if fetch is not None and isinstance(response, Mapping):
        size = fetch_response_size(response)
        now = manager.now_ms()
        fetch_throttle = fetch.record(size, now)
        if max(fetch_throttle, request_throttle) > 0:
            # Answered without records: their bytes are not counted (Kafka's
            # unrecordQuotaSensor and getThrottledResponse).
            fetch.unrecord(size, now)
            # The fetch session (KIP-227) lives on; what it would have told the
            # client is told in its next response.
            session_id = int(response.get("session_id", 0))
            if session_id:
                ctx.broker.fetch_sessions.forget_answers(session_id)
            response = {"throttle_time": 0, "error_code": 0, "session_id": session_id,
                        "responses": []}
        throttle = max(throttle, fetch_throttle)
    # A handler's own throttle (controller_mutation_rate) mutes the channel too.
    throttle = max(throttle, request_throttle, _throttle_of(response))
    if throttle > 0 and response is not None:
        response = _with_throttle(response, throttle)
    return response, throttle


def _from_consumer(ctx: Any, request: Any) -> bool:
    if ctx.header.api_version >= 15:
        return bool(request.replica_state.replica_id < 0)
    return bool(getattr(request, "replica_id", -1) < 0)


def fetch_response_size(response: Mapping[str, Any]) -> int:
    """The record bytes of a Fetch response (what the quota counts; the rest
    of the response is a few dozen bytes per partition)."""
    total = 0
    for topic in response.get("responses", ()):
        for partition in topic["partitions"]:
            records = partition.get("records")
            if isinstance(records, list):
                total += sum(len(chunk) for chunk in records)
            elif records:
                total += len(records)
    return total


def _throttle_of(response: Any) -> int:
    if isinstance(response, Mapping):
        value = response.get("throttle_time", 0)
    else:
        value = getattr(response, "throttle_time", 0)
    if isinstance(value, datetime.timedelta):
        return int(value.total_seconds() * 1000)
    return int(value or 0)


def _with_throttle(response: Any, throttle_ms: int) -> Any:
    """The response with throttle_time set (a response without the field, of
    an old version, goes unchanged: the muting still applies)."""
    if isinstance(response, Mapping):
        if "throttle_time" not in response:
            return response
        return {**response, "throttle_time": throttle_ms}
    if dataclasses.is_dataclass(response) and hasattr(response, "throttle_time"):
        return dataclasses.replace(response,  # type: ignore[type-var]
                                   throttle_time=datetime.timedelta(milliseconds=throttle_ms))
    return response


def request_percentage(elapsed_ns: int) -> float:
    """Handler time as Kafka records it: percent of one second."""
    return elapsed_ns * 100.0 / 1_000_000_000


def _ip_quotas(quotas: Mapping[QuotaEntity, Mapping[str, float]]
               ) -> dict[ipaddress.IPv4Address | ipaddress.IPv6Address | None, float]:
    """connection_creation_rate by address (None: the ip default); an address
    matches in any spelling."""
    found: dict[ipaddress.IPv4Address | ipaddress.IPv6Address | None, float] = {}
    for entity, values in quotas.items():
        value = values.get(q.CONNECTION_CREATION_RATE)
        if value is None or len(entity) != 1 or entity[0][0] != q.IP:
            continue
        name = entity[0][1]
        try:
            found[None if name is None else ipaddress.ip_address(name)] = value
        except ValueError:
            continue
    return found


def _int(config: BrokerConfig, name: str, default: int) -> int:
    value = config.get(name)
    return value if isinstance(value, int) else default


def mutation_quota(ctx: Any, strict_since_version: int) -> MutationQuota:
    """The controller_mutation_rate of a CreateTopics / CreatePartitions /
    DeleteTopics request's client: strict from the version that knows
    THROTTLING_QUOTA_EXCEEDED (KIP-599), permissive below it."""
    manager: ClientQuotaManager = ctx.broker.client_quotas
    return manager.mutation_quota(ctx.principal.name, ctx.header.client_id or "",
                                  ctx.api_version >= strict_since_version)
