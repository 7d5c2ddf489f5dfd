"""Client quotas, sans-I/O: which quota applies to a client (Kafka's
precedence order) and Kafka's rate model that turns recorded bytes, request
time or partition mutations into a throttle time.

Quotas live in the metadata image as `image.client_quotas[entity][key]`, an
entity being (type, name) pairs sorted by type ("client-id" < "user"), name
None for that type's default. A client is (user principal name, client id);
for each quota key separately the first entity present in this order applies
(Kafka's docs, "Quotas"):

    1. /users/<user>/clients/<client-id>     5. /users/<default>/clients/<default>
    2. /users/<user>/clients/<default>       6. /users/<default>
    3. /users/<user>                         7. /clients/<client-id>
    4. /users/<default>/clients/<client-id>  8. /clients/<default>

The entity also decides who shares a sensor, as Kafka's metric tags do: a
/users/... quota without clients is shared by all the user's client ids, a
/clients/... quota by every user of the client id, the others by the pair;
a default entity still gives each user (or client id) a sensor of its own.

Rate model (Kafka's Rate over a windowed sum, org.apache.kafka.common.metrics):
`quota.window.num` samples (default 11) of `quota.window.size.seconds`
(default 1). The rate is the sum of the samples over the time since the
oldest sample started, counted as at least (samples - 1) whole windows, so a
new client is not throttled for its first burst. Over the quota, the throttle
time is (rate - quota) / quota * that span: how long the client must stay
silent for the rate to fall back to the quota. controller_mutation_rate uses
Kafka's token bucket instead (burst: samples * window * quota; throttle:
-tokens / quota).

Times are milliseconds from a caller's monotonic clock (ints, as Kafka's).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass

from strom.cluster.image import QuotaEntity
from strom.errors import InvalidRequestError, UnsupportedVersionError

USER = "user"
CLIENT_ID = "client-id"
IP = "ip"
ENTITY_TYPES = (USER, CLIENT_ID, IP)

PRODUCER_BYTE_RATE = "producer_byte_rate"
CONSUMER_BYTE_RATE = "consumer_byte_rate"
REQUEST_PERCENTAGE = "request_percentage"
CONTROLLER_MUTATION_RATE = "controller_mutation_rate"
CONNECTION_CREATION_RATE = "connection_creation_rate"

LONG_MAX = 9_223_372_036_854_775_807
INT_MAX = 2**31 - 1

#: Kafka's QuotaConfig: the keys of user / client-id entities and their types
#: (integral keys refuse fractions), and of ip entities.
CLIENT_KEYS: Mapping[str, str] = {
    PRODUCER_BYTE_RATE: "LONG", CONSUMER_BYTE_RATE: "LONG",
    REQUEST_PERCENTAGE: "DOUBLE", CONTROLLER_MUTATION_RATE: "DOUBLE",
}
IP_KEYS: Mapping[str, str] = {CONNECTION_CREATION_RATE: "INT"}

#: DescribeClientQuotas match types.
MATCH_EXACT, MATCH_DEFAULT, MATCH_SPECIFIED = 0, 1, 2

#: Who shares a sensor: (user, client id), "" where the entity does not name that part.
SensorKey = tuple[str, str]


# --- validation (Kafka's ClientQuotaControlManager and ClientQuotasImage) ---------------


def entity_of(components: Mapping[str, str | None]) -> QuotaEntity:
    return tuple(sorted(components.items()))


def check_entity(entity: Mapping[str, str | None]) -> Mapping[str, str]:
    """The keys an entity may carry; raises InvalidRequestError for an entity
    Kafka's controller refuses (empty, unknown type, empty name, ip combined
    with user or client id, an ip that is not an address)."""
    if not entity:
        raise InvalidRequestError("Invalid empty client quota entity")
    for entity_type, name in entity.items():
        if entity_type not in ENTITY_TYPES:
            raise InvalidRequestError(f"Unhandled client quota entity type: {entity_type}")
        if name is not None and name == "":
            raise InvalidRequestError(f"Empty {entity_type} not supported")
    if IP in entity:
        if USER in entity or CLIENT_ID in entity:
            raise InvalidRequestError("Invalid quota entity combination, IP entity should"
                                      "not be combined with User or ClientId")
        address = entity[IP]
        if address is not None and not _is_address(address):
            raise InvalidRequestError(f"{address} is not a valid IP or resolvable host.")
        return IP_KEYS
    return CLIENT_KEYS


def _is_address(text: str) -> bool:
    """An IP address (strom resolves no host names: a quota by ip names an address)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def check_value(keys: Mapping[str, str], key: str, value: float) -> None:
    """Kafka's validateQuotaKeyValue."""
    kind = keys.get(key)
    if kind is None:
        raise InvalidRequestError(f"Invalid configuration key {key}")
    if not value > 0.0:
        raise InvalidRequestError(f"Quota {key} must be greater than 0")
    if kind == "DOUBLE":
        return
    limit, article = (INT_MAX, "an INT") if kind == "INT" else (LONG_MAX, "a LONG")
    if value > limit:
        raise InvalidRequestError(f"Proposed value for {key} is too large for {article}.")
    if math.isinf(value) or abs(math.fmod(value, 1.0)) > 1e-6:
        raise InvalidRequestError(f"{key} cannot be a fractional value.")


@dataclass(frozen=True, slots=True)
class QuotaFilter:
    """A DescribeClientQuotas filter: exact names (None: the default entity)
    and types that must merely be present; strict: nothing else."""

    exact: Mapping[str, str | None]
    specified: frozenset[str]
    strict: bool

    def matches(self, entity: QuotaEntity) -> bool:
        parts = dict(entity)
        if self.strict and len(parts) != len(self.exact) + len(self.specified):
            return False
        for entity_type, name in self.exact.items():
            if entity_type not in parts or parts[entity_type] != name:
                return False
        return all(t in parts for t in self.specified)


def parse_filter(components: list[tuple[str, int, str | None]], strict: bool) -> QuotaFilter:
    """Kafka's ClientQuotasImage.describe checks, in its order: (entity type,
    match type, match) components to a filter; raises what Kafka raises."""
    exact: dict[str, str | None] = {}
    specified: set[str] = set()
    for entity_type, match_type, match in components:
        if entity_type == "":
            raise InvalidRequestError("Invalid empty entity type.")
        if entity_type in exact or entity_type in specified:
            raise InvalidRequestError(
                f"Entity type {entity_type} cannot appear more than once in the filter.")
        if entity_type not in ENTITY_TYPES:
            raise UnsupportedVersionError(f"Unsupported entity type {entity_type}")
        if match_type == MATCH_EXACT:
            if match is None:
                raise InvalidRequestError(
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.")
            exact[entity_type] = match
        elif match_type == MATCH_DEFAULT:
            if match is not None:
                raise InvalidRequestError(
                    "Request specified MATCH_TYPE_DEFAULT, but also specified a match string.")
            exact[entity_type] = None
        elif match_type == MATCH_SPECIFIED:
            if match is not None:
                raise InvalidRequestError(
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match "
                    "string.")
            specified.add(entity_type)
        else:
            raise InvalidRequestError(f"Unknown match type {match_type}")
    named = set(exact) | specified
    if IP in named and (USER in named or CLIENT_ID in named):
        raise InvalidRequestError("Invalid entity filter component combination. IP filter "
                                  "component should not be used with user or clientId filter "
                                  "component.")
    return QuotaFilter(exact, frozenset(specified), strict)


# --- resolution ------------------------------------------------------------------------


def resolve(quotas: Mapping[QuotaEntity, Mapping[str, float]], key: str, user: str,
            client_id: str) -> tuple[SensorKey, float] | None:
    """The quota `key` of a client and who shares its sensor; None: unlimited."""
    for entity, shared in (
        (((CLIENT_ID, client_id), (USER, user)), (user, client_id)),
        (((CLIENT_ID, None), (USER, user)), (user, client_id)),
        (((USER, user),), (user, "")),
        (((CLIENT_ID, client_id), (USER, None)), (user, client_id)),
        (((CLIENT_ID, None), (USER, None)), (user, client_id)),
        (((USER, None),), (user, "")),
        (((CLIENT_ID, client_id),), ("", client_id)),
        (((CLIENT_ID, None),), ("", client_id)),
    ):
        values = quotas.get(entity)
        if values is not None:
            value = values.get(key)
            if value is not None:
                return shared, value
    return None


# --- the rate model -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowConfig:
    """Kafka's quota.window.num and quota.window.size.seconds (in ms here)."""

    samples: int = 11
    window_ms: int = 1000


class _Sample:
    __slots__ = ("start_ms", "last_event_ms", "value")

    def __init__(self, now_ms: int) -> None:
        self.start_ms = now_ms
        self.last_event_ms = now_ms
        self.value = 0.0

    def reset(self, now_ms: int) -> None:
        self.start_ms = now_ms
        self.last_event_ms = now_ms
        self.value = 0.0


class Rate:
    """Kafka's Rate over a SampledTotal: samples + 1 windows kept (one
    overlapping the monitored span), rate per second."""

    __slots__ = ("config", "_samples", "_current")

    def __init__(self, config: WindowConfig, now_ms: int) -> None:
        self.config = config
        self._samples = [_Sample(now_ms)]
        self._current = 0

    def record(self, value: float, now_ms: int) -> None:
        sample = self._samples[self._current]
        if now_ms - sample.start_ms >= self.config.window_ms:
            self._current = (self._current + 1) % (self.config.samples + 1)
            if self._current >= len(self._samples):
                sample = _Sample(now_ms)
                self._samples.append(sample)
            else:
                sample = self._samples[self._current]
                sample.reset(now_ms)
        sample.value += value
        sample.last_event_ms = now_ms

    def _purge(self, now_ms: int) -> None:
        expire = self.config.samples * self.config.window_ms
        for sample in self._samples:
            if now_ms - sample.last_event_ms >= expire:
                sample.reset(now_ms)

    def window_ms(self, now_ms: int) -> int:
        """The span the rate is measured over (Kafka's Rate.windowSize)."""
        self._purge(now_ms)
        elapsed = now_ms - min(s.start_ms for s in self._samples)
        full = elapsed // self.config.window_ms
        if full < self.config.samples - 1:
            elapsed += (self.config.samples - 1 - full) * self.config.window_ms
        return max(elapsed, 1)

    def measure(self, now_ms: int) -> float:
        return self.measure_over(now_ms)[0]

    def measure_over(self, now_ms: int) -> tuple[float, int]:
        """(the rate per second, the span in ms it was measured over)."""
        window = self.window_ms(now_ms)
        return sum(s.value for s in self._samples) * 1000.0 / window, window


class QuotaSensor:
    """One client's (or sharing group's) sensor for one quota."""

    __slots__ = ("bound", "rate", "last_used_ms")

    def __init__(self, bound: float, config: WindowConfig, now_ms: int) -> None:
        self.bound = bound
        self.rate = Rate(config, now_ms)
        self.last_used_ms = now_ms

    def record(self, value: float, now_ms: int, max_throttle_ms: int | None = None) -> int:
        """Record `value`; the throttle time in ms (0 within the quota), as
        Kafka's ClientQuotaManager.recordAndGetThrottleTimeMs / QuotaUtils."""
        self.last_used_ms = now_ms
        self.rate.record(value, now_ms)
        observed, window = self.rate.measure_over(now_ms)
        if observed <= self.bound:
            return 0
        throttle = round((observed - self.bound) / self.bound * window)
        return throttle if max_throttle_ms is None else min(throttle, max_throttle_ms)

    def unrecord(self, value: float, now_ms: int) -> None:
        """Take back what a throttled fetch recorded but will not send (Kafka's
        unrecordQuotaSensor)."""
        self.rate.record(-value, now_ms)

    def max_in_window(self) -> float:
        """Bytes a fetch may carry at most (Kafka's getMaxValueInQuotaWindow):
        the quota over the (samples - 1) whole windows of the span."""
        config = self.rate.config
        return self.bound * (config.samples - 1) * config.window_ms / 1000.0


class TokenBucket:
    """Kafka's TokenBucket for controller_mutation_rate: full at start
    (burst = samples * window * quota), refilled at the quota per second."""

    __slots__ = ("bound", "config", "tokens", "_at_ms", "last_used_ms")

    def __init__(self, bound: float, config: WindowConfig, now_ms: int) -> None:
        self.bound = bound
        self.config = config
        self.tokens = self.burst
        self._at_ms = now_ms
        self.last_used_ms = now_ms

    @property
    def burst(self) -> float:
        return self.config.samples * self.config.window_ms / 1000.0 * self.bound

    def _refill(self, now_ms: int) -> None:
        self.tokens = min(self.burst, self.tokens + self.bound * (now_ms - self._at_ms) / 1000.0)
        self._at_ms = now_ms

    def throttle_ms(self, now_ms: int) -> int:
        """0 while tokens remain; else the time until they are back to 0."""
        self._refill(now_ms)
        return 0 if self.tokens >= 0 else round(-self.tokens / self.bound * 1000)

    def record(self, permits: float, now_ms: int) -> int:
        """Take `permits`; the throttle time afterwards (Kafka's permissive record)."""
        self.last_used_ms = now_ms
        self._refill(now_ms)
        self.tokens = min(self.burst, self.tokens - permits)
        return 0 if self.tokens >= 0 else round(-self.tokens / self.bound * 1000)
