"""Counters the request path keeps for /metrics, kept as plain ints.

The request path only adds to ints in dicts and slotted objects; turning them
into Prometheus samples (labels, families, text) happens at scrape time in
strom.broker.metrics. A prometheus-client `Counter.labels(...).inc()` per
request takes a lock and looks the label tuple up each time; an int increment
costs a fraction of that (docs/operations.md, "Metrics", for the figures).
Everything here runs on the event loop, so no locks are needed; the fsync
histogram is observed from the loop too (the flusher's done callback).
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from typing import Any

#: Upper bounds (seconds) of request latency histograms: Kafka's request
#: metrics are in milliseconds; Prometheus' convention is seconds.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)
#: fsync and event-loop lag: finer at the low end.
SHORT_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0,
)


class Histogram:
    """Cumulative-at-scrape histogram: observe() bumps one bucket."""

    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        # One more than bounds: the +Inf bucket.
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def buckets(self) -> list[tuple[str, float]]:
        """(le, cumulative count) pairs, +Inf last, as Prometheus wants them."""
        out: list[tuple[str, float]] = []
        total = 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            total += count
            out.append((repr(bound), total))
        out.append(("+Inf", total + self.counts[-1]))
        return out


class TopicCounters:
    """Kafka's BrokerTopicMetrics for one topic."""

    __slots__ = ("messages_in", "bytes_in", "bytes_out", "replication_bytes_out")

    def __init__(self) -> None:
        self.messages_in = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.replication_bytes_out = 0


class BrokerStats:
    """Everything the request path counts; read by the metrics collector."""

    def __init__(self) -> None:
        #: False when nothing can read the counters (no strom.http.listener,
        #: which is read-only, so for the broker's life): the request path
        #: then tests this one bool and counts nothing (issue 19: per-request
        #: cost).
        self.enabled = True
        self.topics: dict[str, TopicCounters] = {}
        #: Per api key: latency from a request's decoding to its response.
        self.requests: dict[int, Histogram] = {}
        #: (api key, error code) -> responses (or partitions of them) with that error.
        self.errors: dict[tuple[int, int], int] = {}
        #: api key -> seconds clients were throttled by quotas (Kafka's throttle-time).
        self.throttle_seconds: dict[int, float] = {}

    def topic(self, name: str) -> TopicCounters:
        counters = self.topics.get(name)
        if counters is None:
            counters = self.topics[name] = TopicCounters()
        return counters

    def request_done(self, api_key: int, seconds: float, response: object) -> None:
        hist = self.requests.get(api_key)
        if hist is None:
            hist = self.requests[api_key] = Histogram()
        # Histogram.observe inlined: this runs once per request.
        hist.counts[bisect_left(hist.bounds, seconds)] += 1
        hist.sum += seconds
        hist.count += 1
        if type(response) is dict:
            nested = _HOT_PATHS.get(api_key)
            if nested is not None:
                _count_hot_errors(self.errors, api_key, response, *nested)
            else:
                _count_errors(self.errors, api_key, response)
        elif response is not None:
            _count_entity_errors(self.errors, api_key, response)

    def error(self, api_key: int, code: int) -> None:
        key = (api_key, code)
        self.errors[key] = self.errors.get(key, 0) + 1

    def throttled(self, api_key: int, throttle_ms: int) -> None:
        self.throttle_seconds[api_key] = self.throttle_seconds.get(api_key, 0.0) \
            + throttle_ms / 1000.0

    def forget_topics(self, existing: Iterable[str]) -> None:
        """Drop the counters of deleted topics (their series end, as Kafka
        removes a deleted topic's BrokerTopicMetrics)."""
        keep = set(existing)
        for name in [n for n in self.topics if n not in keep]:
            del self.topics[name]


#: Produce (0) and Fetch (1): where their partitions' error codes are, so the
#: walk visits only those (a generic walk over every key cost ~3x as much).
_HOT_PATHS: dict[int, tuple[str, str]] = {0: ("responses", "partition_responses"),
                                          1: ("responses", "partitions")}


def _count_hot_errors(errors: dict[tuple[int, int], int], api_key: int,
                      response: Mapping[str, Any], topics_key: str, partitions_key: str) -> None:
    code = response.get("error_code")
    if code:
        key = (api_key, int(code))
        errors[key] = errors.get(key, 0) + 1
    for topic in response.get(topics_key) or ():
        for partition in topic[partitions_key]:
            code = partition["error_code"]
            if code:
                key = (api_key, int(code))
                errors[key] = errors.get(key, 0) + 1


def _count_errors(errors: dict[tuple[int, int], int], api_key: int,
                  response: Mapping[str, Any]) -> None:
    """Count every non-zero `error_code` of a response built as dicts (the
    top level's and its entries', e.g. each partition of a Produce response),
    as Kafka's ErrorsPerSec counts Response.errorCounts()."""
    code = response.get("error_code")
    if code:
        key = (api_key, int(code))
        errors[key] = errors.get(key, 0) + 1
    for name, value in response.items():
        if name != "records" and type(value) is list and value and type(value[0]) is dict:
            for item in value:
                _count_errors(errors, api_key, item)


def _count_entity_errors(errors: dict[tuple[int, int], int], api_key: int,
                         entity: object) -> None:
    """The same for the few handlers that answer with kio's message objects
    (frozen dataclasses; admin APIs, so walking their fields costs nothing
    that matters)."""
    if not dataclasses.is_dataclass(entity):
        return
    for field in dataclasses.fields(entity):
        value = getattr(entity, field.name)
        if field.name == "error_code":
            if value:
                key = (api_key, int(value))
                errors[key] = errors.get(key, 0) + 1
        elif isinstance(value, tuple | list):
            for item in value:
                if dataclasses.is_dataclass(item):
                    _count_entity_errors(errors, api_key, item)
