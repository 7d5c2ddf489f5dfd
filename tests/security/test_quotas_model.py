"""strom/security/quotas.py without a broker: Kafka's precedence order, the
validation of AlterClientQuotas / DescribeClientQuotas, and the rate model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strom.cluster.image import QuotaEntity
from strom.errors import InvalidRequestError, UnsupportedVersionError
from strom.security import quotas as q

USERS = ["alice", "bob"]
CLIENTS = ["app", "tool"]


def entity(user: object = "absent", client: object = "absent") -> QuotaEntity:
    parts: dict[str, str | None] = {}
    if user != "absent":
        parts["user"] = user  # type: ignore[assignment]
    if client != "absent":
        parts["client-id"] = client  # type: ignore[assignment]
    return q.entity_of(parts)


# --- resolution --------------------------------------------------------------------------

ALL_ENTITIES = [entity(u, c) for u in ["absent", None, *USERS] for c in ["absent", None, *CLIENTS]
                if not (u == "absent" and c == "absent")]


def reference(quotas: dict[QuotaEntity, dict[str, float]], user: str, client: str
              ) -> float | None:
    """The docs' order as a ranking: a user part named exactly beats the
    default user beats no user part, then the same for the client id."""
    def rank(part: str | None, present: bool, name: str) -> int | None:
        if not present:
            return 2
        if part is None:
            return 1
        return 0 if part == name else None

    best: tuple[int, int] | None = None
    value = None
    for ent, values in quotas.items():
        parts = dict(ent)
        u = rank(parts.get("user"), "user" in parts, user)
        c = rank(parts.get("client-id"), "client-id" in parts, client)
        if u is None or c is None or "producer_byte_rate" not in values:
            continue
        if best is None or (u, c) < best:
            best, value = (u, c), values["producer_byte_rate"]
    return value


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(ALL_ENTITIES), st.integers(1, 10**6), max_size=12),
       st.sampled_from(USERS), st.sampled_from(CLIENTS))
def test_resolution_follows_kafkas_precedence(chosen: dict[QuotaEntity, int], user: str,
                                              client: str) -> None:
    quotas = {e: {"producer_byte_rate": float(v)} for e, v in chosen.items()}
    found = q.resolve(quotas, "producer_byte_rate", user, client)
    assert (None if found is None else found[1]) == reference(quotas, user, client)


def test_resolution_is_per_key_and_names_who_shares_the_sensor() -> None:
    quotas = {
        entity("alice"): {"producer_byte_rate": 100.0},
        entity(None, None): {"consumer_byte_rate": 7.0},
        entity(client=None): {"producer_byte_rate": 5.0},
    }
    assert q.resolve(quotas, "producer_byte_rate", "alice", "app") == (("alice", ""), 100.0)
    # The user default with the client default: each (user, client id) its own sensor.
    assert q.resolve(quotas, "consumer_byte_rate", "alice", "app") == (("alice", "app"), 7.0)
    # The client default: one sensor per client id, shared by its users.
    assert q.resolve(quotas, "producer_byte_rate", "bob", "app") == (("", "app"), 5.0)
    assert q.resolve(quotas, "request_percentage", "bob", "app") is None


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(("parts", "message"), [
    ({}, "Invalid empty client quota entity"),
    ({"group": "x"}, "Unhandled client quota entity type: group"),
    ({"user": ""}, "Empty user not supported"),
    ({"ip": "1.2.3.4", "user": "a"}, "Invalid quota entity combination"),
    ({"ip": "not an address"}, "not a valid IP"),
])
def test_entities_kafka_refuses(parts: dict[str, str | None], message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        q.check_entity(parts)


def test_keys_by_entity_and_values() -> None:
    assert q.check_entity({"ip": None}) == q.IP_KEYS
    assert q.check_entity({"user": None, "client-id": "x"}) == q.CLIENT_KEYS
    keys = q.CLIENT_KEYS
    q.check_value(keys, "producer_byte_rate", 1024.0)
    q.check_value(keys, "request_percentage", 12.5)
    for key, value, message in [
        ("bogus", 1.0, "Invalid configuration key bogus"),
        ("producer_byte_rate", -1.0, "must be greater than 0"),
        ("producer_byte_rate", 0.0, "must be greater than 0"),
        ("producer_byte_rate", 1.5, "cannot be a fractional value"),
        ("consumer_byte_rate", 1e30, "too large for a LONG"),
        ("connection_creation_rate", 1.0, "Invalid configuration key"),
    ]:
        with pytest.raises(InvalidRequestError, match=message):
            q.check_value(keys, key, value)
    with pytest.raises(InvalidRequestError, match="too large for an INT"):
        q.check_value(q.IP_KEYS, "connection_creation_rate", 2.0**40)


def test_describe_filters() -> None:
    quotas = [entity("alice"), entity("alice", "app"), entity(None), entity(client="app"),
              q.entity_of({"ip": "1.2.3.4"})]
    exact = q.parse_filter([("user", q.MATCH_EXACT, "alice")], strict=False)
    assert [e for e in quotas if exact.matches(e)] == [entity("alice"), entity("alice", "app")]
    strict = q.parse_filter([("user", q.MATCH_EXACT, "alice")], strict=True)
    assert [e for e in quotas if strict.matches(e)] == [entity("alice")]
    default = q.parse_filter([("user", q.MATCH_DEFAULT, None)], strict=False)
    assert [e for e in quotas if default.matches(e)] == [entity(None)]
    specified = q.parse_filter([("client-id", q.MATCH_SPECIFIED, None)], strict=False)
    assert [e for e in quotas if specified.matches(e)] == [entity("alice", "app"),
                                                            entity(client="app")]
    everything = q.parse_filter([], strict=False)
    assert all(everything.matches(e) for e in quotas)
    for components, error in [
        ([("", 0, "x")], InvalidRequestError),
        ([("user", 0, "a"), ("user", 2, None)], InvalidRequestError),
        ([("group", 0, "a")], UnsupportedVersionError),
        ([("user", 0, None)], InvalidRequestError),
        ([("user", 1, "a")], InvalidRequestError),
        ([("user", 2, "a")], InvalidRequestError),
        ([("user", 7, None)], InvalidRequestError),
        ([("ip", 1, None), ("user", 2, None)], InvalidRequestError),
    ]:
        with pytest.raises(error):
            q.parse_filter(components, strict=False)


# --- the rate model ---------------------------------------------------------------------


def test_rate_counts_at_least_samples_minus_one_windows() -> None:
    config = q.WindowConfig(samples=11, window_ms=1000)
    rate = q.Rate(config, 0)
    rate.record(1000.0, 0)
    # One second of data is measured over ten windows, as Kafka does.
    assert rate.window_ms(0) == 10_000
    assert rate.measure(0) == pytest.approx(100.0)
    assert rate.window_ms(15_500) == 10_000  # the sample expired: a fresh span


def test_throttle_time_is_kafkas() -> None:
    config = q.WindowConfig(samples=11, window_ms=1000)
    sensor = q.QuotaSensor(100.0, config, 0)
    assert sensor.record(1000.0, 0) == 0  # 1000 B over 10 s: 100 B/s, at the quota
    # 3000 B over 10 s = 300 B/s: (300 - 100) / 100 * 10 s.
    assert sensor.record(2000.0, 0) == 20_000
    assert sensor.max_in_window() == 1000.0


def test_token_bucket() -> None:
    config = q.WindowConfig(samples=11, window_ms=1000)
    bucket = q.TokenBucket(2.0, config, 0)  # burst 22 partitions
    assert bucket.record(20, 0) == 0
    assert bucket.throttle_ms(0) == 0
    assert bucket.record(10, 0) == 4000  # 8 partitions owed at 2 a second
    assert bucket.throttle_ms(1000) == 3000
    assert bucket.throttle_ms(4000) == 0


@settings(max_examples=30, deadline=None)
@given(st.integers(10_000, 1_000_000), st.integers(2, 11), st.integers(1, 3),
       st.lists(st.floats(0.01, 0.1), min_size=1, max_size=20))
def test_an_obedient_client_holds_the_quota(bound: int, samples: int, window_s: int,
                                            sizes: list[float]) -> None:
    """A client that sends as fast as the throttle times let it gets, once the
    first burst is behind it, the quota within 5% over 20 spans."""
    config = q.WindowConfig(samples=samples, window_ms=window_s * 1000)
    sensor = q.QuotaSensor(float(bound), config, 0)
    span_ms = samples * window_s * 1000
    now = 0
    sent: list[tuple[int, float]] = []
    i = 0
    while now < 22 * span_ms:
        size = max(1.0, round(bound * sizes[i % len(sizes)]))
        i += 1
        throttle = sensor.record(size, now)
        sent.append((now, size))
        now += max(throttle, 1)
    start, end = 2 * span_ms, 22 * span_ms
    total = sum(size for at, size in sent if start <= at < end)
    assert total / ((end - start) / 1000) == pytest.approx(bound, rel=0.05)
