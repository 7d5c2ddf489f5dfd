"""The write side: publish typed events, keyed by entity id.

    publisher = Publisher("localhost:9092", registry)
    delivery = publisher.publish("orders", OrderPlaced(...), key=order_id)

Idempotent by default (`enable.idempotence=true`, `acks=all`): a retried
produce is written once, and records of one key keep their order. Keys are
partitioned with murmur2, as Kafka's Java client does, so a Java producer
and this one put an entity's events on the same partition.

`Publisher(..., transactional_id="...")` makes a transactional producer
(`with publisher.transaction(): ...`). That needs broker transactions; on a
cluster without them the constructor raises
TransactionsUnsupported at once, naming the missing APIs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from strom.views.errors import BrokerUnavailable, PublishError, TransactionsUnsupported
from strom.views.events import EventRegistry
from strom.views.kafka import (
    TRANSACTION_APIS,
    broker_api_versions,
    client_config,
    describe_kafka_error,
)

__all__ = ["Publisher", "Delivery", "encode_key", "ensure_transactions"]


@dataclass(frozen=True, slots=True)
class Delivery:
    topic: str
    partition: int
    offset: int


def encode_key(key: str | bytes | None) -> bytes | None:
    if key is None or isinstance(key, bytes):
        return key
    return key.encode()


def missing_transaction_apis(apis: dict[int, tuple[int, int]]) -> list[str]:
    """The transaction APIs a broker's ApiVersions answer lacks, by name."""
    return [name for key, name in sorted(TRANSACTION_APIS.items()) if key not in apis]


def ensure_transactions(bootstrap: str, producer: Producer, timeout: float) -> None:
    """init_transactions(), or TransactionsUnsupported if the cluster has none."""
    apis = broker_api_versions(bootstrap, timeout=min(timeout, 5.0))
    if apis is not None:
        missing = missing_transaction_apis(apis)
        if missing:
            raise TransactionsUnsupported(
                f"the cluster at {bootstrap} does not support Kafka transactions: it does not "
                f"advertise {', '.join(missing)} (ApiVersions), so there is no transaction "
                "coordinator. Publish without transactional_id (idempotent) and use a "
                "view's outbox for exactly-once effects")
    try:
        producer.init_transactions(timeout)
    except KafkaException as exc:
        err = exc.args[0] if exc.args else None
        if isinstance(err, KafkaError) and err.code() in (
                KafkaError._TIMED_OUT, KafkaError.COORDINATOR_NOT_AVAILABLE):
            message = (f"no transaction coordinator answered at {bootstrap} within "
                       f"{timeout:g}s ({describe_kafka_error(exc)})")
            if apis is None:
                raise TransactionsUnsupported(
                    message + "; the cluster may not support transactions") from None
            raise BrokerUnavailable(message) from None
        if isinstance(err, KafkaError) and err.code() in (
                KafkaError._UNSUPPORTED_FEATURE, KafkaError.UNSUPPORTED_VERSION,
                KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED):
            raise TransactionsUnsupported(f"transactions at {bootstrap}: "
                                          f"{describe_kafka_error(exc)}") from None
        raise PublishError(f"init_transactions: {describe_kafka_error(exc)}") from None


class Publisher:
    def __init__(self, bootstrap: str, registry: EventRegistry, *,
                 config: Mapping[str, Any] | None = None,
                 transactional_id: str | None = None,
                 request_timeout: float = 30.0) -> None:
        self.bootstrap = bootstrap
        self.registry = registry
        self.request_timeout = request_timeout
        self.transactional = transactional_id is not None
        extra = dict(config or {})
        if transactional_id is not None:
            extra["transactional.id"] = transactional_id
        self._producer = Producer(client_config(
            bootstrap, extra, enable_idempotence=True, acks="all", linger_ms=1,
            partitioner="murmur2_random",
            message_timeout_ms=int(request_timeout * 1000)))
        if self.transactional:
            ensure_transactions(bootstrap, self._producer, request_timeout)
        self._closed = threading.Event()
        # Delivery callbacks run in whichever thread polls; one thread polls.
        self._poller = threading.Thread(target=self._poll, name="strom-publisher",
                                        daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.05)

    # --- publishing ---------------------------------------------------------------------

    def publish_async(self, topic: str, event: object, *, key: str | bytes | None,
                      headers: Sequence[tuple[str, bytes]] = ()) -> Future[Delivery]:
        """Queue an event; the future resolves when the cluster acknowledged it."""
        encoded = self.registry.encode(event)
        return self.produce(topic, encoded.value, key=key,
                            headers=[*encoded.headers, *headers])

    def publish(self, topic: str, event: object, *, key: str | bytes | None,
                headers: Sequence[tuple[str, bytes]] = (),
                timeout: float | None = None) -> Delivery:
        """Publish an event and wait until the cluster acknowledged it."""
        future = self.publish_async(topic, event, key=key, headers=headers)
        return self._result(future, timeout)

    def produce(self, topic: str, value: bytes | None, *, key: str | bytes | None,
                headers: Sequence[tuple[str, bytes]] = ()) -> Future[Delivery]:
        """Queue raw bytes (a tombstone when `value` is None)."""
        if self._closed.is_set():
            raise PublishError("publisher is closed")
        future: Future[Delivery] = Future()

        def done(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                future.set_exception(PublishError(
                    f"{topic}: {err.name()}: {err.str()}", retriable=err.retriable()))
            else:
                future.set_result(Delivery(msg.topic() or topic, msg.partition() or 0,
                                           msg.offset() or 0))

        try:
            self._producer.produce(topic, value=value, key=encode_key(key),
                                   headers=list(headers), on_delivery=done)
        except BufferError:
            # The local queue is full: wait for room (bounded by request_timeout).
            self._producer.flush(self.request_timeout)
            self._producer.produce(topic, value=value, key=encode_key(key),
                                   headers=list(headers), on_delivery=done)
        except KafkaException as exc:
            raise PublishError(f"{topic}: {describe_kafka_error(exc)}") from None
        return future

    def _result(self, future: Future[Delivery], timeout: float | None) -> Delivery:
        wait = self.request_timeout + 5 if timeout is None else timeout
        try:
            return future.result(wait)
        except TimeoutError:
            raise BrokerUnavailable(f"no acknowledgement from {self.bootstrap} within "
                                    f"{wait:g}s") from None

    def flush(self, timeout: float | None = None) -> int:
        """Wait for every queued record; returns how many are still queued."""
        return int(self._producer.flush(self.request_timeout if timeout is None else timeout))

    # --- transactions -------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Publisher]:
        """Everything published in the block is committed atomically, or aborted
        if the block raises."""
        if not self.transactional:
            raise PublishError("transaction() needs Publisher(..., transactional_id=...)")
        try:
            self._producer.begin_transaction()
        except KafkaException as exc:
            raise PublishError(f"begin_transaction: {describe_kafka_error(exc)}") from None
        try:
            yield self
        except BaseException:
            self._producer.abort_transaction(self.request_timeout)
            raise
        try:
            self._producer.commit_transaction(self.request_timeout)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.txn_requires_abort():
                self._producer.abort_transaction(self.request_timeout)
            raise PublishError(f"commit_transaction: {describe_kafka_error(exc)}",
                               retriable=bool(err and err.retriable())) from None

    @property
    def producer(self) -> Producer:
        """The underlying confluent-kafka producer."""
        return self._producer

    def close(self, timeout: float | None = None) -> None:
        if self._closed.is_set():
            return
        self.flush(timeout)
        self._closed.set()
        self._poller.join(timeout=5)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
