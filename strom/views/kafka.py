"""The toolkit's boundary with the client library (confluent-kafka).

Everything that talks to the cluster goes through confluent-kafka, except
`broker_api_versions`: a capability probe (one ApiVersions v0 request over a
plain socket) used only to tell "this cluster has no transactions" apart
from "the transaction coordinator is slow", which the client library cannot.
Errors are translated to `strom.views.errors` here.
"""

from __future__ import annotations

import logging
import socket
import struct
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from strom.views.errors import BrokerUnavailable
from strom.views.store import TopicPartition as TP

__all__ = ["client_config", "ensure_topic", "topic_partitions", "high_watermarks",
           "broker_api_versions", "describe_kafka_error", "TRANSACTION_APIS"]

# Kafka API keys a transactional producer needs besides produce/metadata.
TRANSACTION_APIS = {24: "AddPartitionsToTxn", 25: "AddOffsetsToTxn", 26: "EndTxn",
                    28: "TxnOffsetCommit"}
_API_VERSIONS = 18
_CLIENT_LOG = logging.getLogger("strom.views.client")


def client_config(bootstrap: str, extra: Mapping[str, Any] | None = None,
                  **defaults: Any) -> dict[str, Any]:
    """Config for a confluent-kafka client: `defaults` (dots as underscores;
    callbacks keep their names, `error_cb`),
    then the user's `extra` (Kafka property names) on top."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        # librdkafka's log lines go to Python logging, not straight to stderr.
        "logger": _CLIENT_LOG,
        # An idle connection closed by the broker is not worth a log line.
        "log.connection.close": False,
        # Reconnect quickly after a broker restart; the defaults back off to 10 s.
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 1000,
    }
    config.update({k if k.endswith("_cb") else k.replace("_", "."): v
                   for k, v in defaults.items()})
    config.update(extra or {})
    return config


def describe_kafka_error(exc: BaseException) -> str:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        err = exc.args[0]
        return f"{err.name()}: {err.str()}"
    return str(exc)


def topic_partitions(consumer: Consumer, topic: str, timeout: float) -> list[int] | None:
    """The partitions of `topic`, or None if it does not exist (yet)."""
    try:
        md = consumer.list_topics(topic, timeout=timeout)
    except KafkaException as exc:
        raise BrokerUnavailable(f"no metadata for topic {topic!r} within {timeout:g}s "
                                f"({describe_kafka_error(exc)})") from None
    meta = md.topics.get(topic)
    if meta is None:
        return None
    if meta.error is not None:
        if meta.error.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART,
                                 KafkaError._UNKNOWN_TOPIC):
            return None
        if meta.error.retriable():
            raise BrokerUnavailable(f"metadata for topic {topic!r}: {meta.error.str()}")
        raise BrokerUnavailable(f"metadata for topic {topic!r}: {meta.error.str()}")
    return sorted(meta.partitions)


def high_watermarks(consumer: Consumer, partitions: list[TP], timeout: float
                    ) -> dict[TP, tuple[int, int]]:
    """(log start offset, high watermark) of each partition, asked of the cluster
    now (ListOffsets), all within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    out: dict[TP, tuple[int, int]] = {}
    for topic, partition in partitions:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BrokerUnavailable(f"no high watermarks within {timeout:g}s "
                                    f"(got {len(out)} of {len(partitions)} partitions)")
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                       timeout=left, cached=False)
        except KafkaException as exc:
            raise BrokerUnavailable(
                f"no high watermark for {topic}[{partition}] within {timeout:g}s "
                f"({describe_kafka_error(exc)})") from None
        out[(topic, partition)] = (int(low), int(high))
    return out


def ensure_topic(bootstrap: str, topic: str, *, partitions: int = 1,
                 config: Mapping[str, str] | None = None, timeout: float = 15.0,
                 client_extra: Mapping[str, Any] | None = None) -> bool:
    """Create `topic` unless it exists; True if this call created it. The
    replication factor is the cluster's default. An existing topic is left as it
    is (its partitions and configs are not checked)."""
    admin = AdminClient(client_config(bootstrap, client_extra))
    futures = admin.create_topics([NewTopic(topic, partitions, config=dict(config or {}))],
                                  operation_timeout=timeout, request_timeout=timeout)
    try:
        futures[topic].result(timeout)
    except KafkaException as exc:
        err = exc.args[0] if exc.args else None
        if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return False
        raise BrokerUnavailable(f"creating topic {topic!r}: {describe_kafka_error(exc)}"
                                ) from None
    except TimeoutError:
        raise BrokerUnavailable(f"creating topic {topic!r}: no answer from {bootstrap} "
                                f"within {timeout:g}s") from None
    return True


def broker_api_versions(bootstrap: str, timeout: float = 5.0
                        ) -> dict[int, tuple[int, int]] | None:
    """The API version ranges a bootstrap broker advertises (ApiVersions v0),
    or None if no bootstrap server answered over a plain connection (TLS, SASL,
    down): callers then fall back to the client library's own timeout."""
    deadline = time.monotonic() + timeout
    client_id = b"strom-views-probe"
    request = struct.pack(">hhih", _API_VERSIONS, 0, 1, len(client_id)) + client_id
    frame = struct.pack(">i", len(request)) + request
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        host = host.strip("[]") or "localhost"
        left = deadline - time.monotonic()
        if left <= 0 or not port.isdigit():
            continue
        try:
            with socket.create_connection((host, int(port)), timeout=left) as sock:
                sock.sendall(frame)
                size = struct.unpack(">i", _recv_exactly(sock, 4))[0]
                if not 0 < size < 1 << 20:
                    continue
                body = _recv_exactly(sock, size)
        except (OSError, struct.error):
            continue
        return _parse_api_versions_v0(body)
    return None


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks: list[bytes] = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise OSError("connection closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _parse_api_versions_v0(body: bytes) -> dict[int, tuple[int, int]] | None:
    try:
        _correlation_id, error_code, count = struct.unpack_from(">ihi", body, 0)
        if error_code != 0 or not 0 <= count <= 1000:
            return None
        apis: dict[int, tuple[int, int]] = {}
        for i in range(count):
            key, lo, hi = struct.unpack_from(">hhh", body, 10 + 6 * i)
            apis[key] = (lo, hi)
        return apis
    except struct.error:
        return None
