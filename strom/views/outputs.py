"""Where a view's handlers publish: the outbox (default) or a Kafka transaction.

The runner calls an output at fixed points of each batch:

    begin_batch()  publish()*  before_commit(offsets)  [store commit]  after_commit()
                   ... or abort_batch() if anything raised

and `idle()` between batches.

OutboxOutput: entries go into the store transaction; the relay produces them
after the commit (see outbox.py). Exactly-once without broker transactions.

TransactionalOutput: records are produced inside a Kafka transaction that
also carries the batch's source offsets (send_offsets_to_transaction, under
group id `strom-view-<name>`, with no group membership: the view still
assigns its own partitions). The Kafka transaction commits first, then the
store. A crash between the two leaves the store behind Kafka; on start the
runner replays that gap with publishing suppressed (`resume_offsets`), so
outputs and state are each applied once. Needs broker transactions: a
cluster without them makes the constructor raise TransactionsUnsupported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from strom.views.errors import PublishError
from strom.views.kafka import client_config, describe_kafka_error
from strom.views.outbox import Outbox, add_entry
from strom.views.publisher import ensure_transactions
from strom.views.store import StoreTransaction, ViewStore
from strom.views.store import TopicPartition as TP

__all__ = ["Output", "OutboxOutput", "TransactionalOutput"]


class Output(Protocol):
    def begin_batch(self) -> None: ...

    def publish(self, tx: StoreTransaction, topic: str, key: bytes | None,
                value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> None: ...

    def before_commit(self, offsets: dict[TP, int]) -> None: ...

    def after_commit(self) -> None: ...

    def abort_batch(self) -> None: ...

    def idle(self, wait: float) -> None: ...

    def pending(self) -> int: ...

    def resume_offsets(self, partitions: list[TP], timeout: float) -> dict[TP, int]:
        """Offsets up to which outputs were already published (replay below them
        without publishing)."""

    def close(self, timeout: float) -> None: ...


class OutboxOutput:
    def __init__(self, view_name: str, bootstrap: str, store: ViewStore,
                 producer_config: dict[str, Any], consumer_config: dict[str, Any],
                 request_timeout: float) -> None:
        self._outbox = Outbox(view_name, bootstrap, store, producer_config, consumer_config,
                              request_timeout)
        self._added = 0

    def begin_batch(self) -> None:
        self._added = 0

    def publish(self, tx: StoreTransaction, topic: str, key: bytes | None,
                value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> None:
        add_entry(tx, topic, key, value, headers)
        self._added += 1

    def before_commit(self, offsets: dict[TP, int]) -> None:
        pass

    def after_commit(self) -> None:
        if self._added:
            self._outbox.pending += self._added
            self._added = 0
            self._outbox.relay(0.0)

    def abort_batch(self) -> None:
        self._added = 0

    def idle(self, wait: float) -> None:
        self._outbox.relay(wait)

    def pending(self) -> int:
        return self._outbox.pending

    def resume_offsets(self, partitions: list[TP], timeout: float) -> dict[TP, int]:
        return {}

    def close(self, timeout: float) -> None:
        self._outbox.close(timeout)


class TransactionalOutput:
    def __init__(self, view_name: str, bootstrap: str, transactional_id: str,
                 consumer: Consumer, producer_config: dict[str, Any],
                 request_timeout: float) -> None:
        self._consumer = consumer
        self._timeout = request_timeout
        self._producer = Producer(client_config(
            bootstrap, producer_config, transactional_id=transactional_id,
            enable_idempotence=True, acks="all", linger_ms=2, partitioner="murmur2_random"))
        ensure_transactions(bootstrap, self._producer, request_timeout)
        self._in_batch = False

    def begin_batch(self) -> None:
        self._producer.begin_transaction()
        self._in_batch = True

    def publish(self, tx: StoreTransaction, topic: str, key: bytes | None,
                value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> None:
        self._producer.produce(topic, value=value, key=key, headers=list(headers))

    def before_commit(self, offsets: dict[TP, int]) -> None:
        try:
            self._producer.send_offsets_to_transaction(
                [TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                self._consumer.consumer_group_metadata(), self._timeout)
            self._producer.commit_transaction(self._timeout)
        except KafkaException as exc:
            raise PublishError(f"committing the view's transaction: "
                               f"{describe_kafka_error(exc)}") from None
        self._in_batch = False

    def after_commit(self) -> None:
        pass

    def abort_batch(self) -> None:
        if self._in_batch:
            self._in_batch = False
            try:
                self._producer.abort_transaction(self._timeout)
            except KafkaException:
                pass  # the next begin_transaction reports a fatal producer state

    def idle(self, wait: float) -> None:
        self._producer.poll(0)

    def pending(self) -> int:
        return 0

    def resume_offsets(self, partitions: list[TP], timeout: float) -> dict[TP, int]:
        if not partitions:
            return {}
        try:
            committed = self._consumer.committed(
                [TopicPartition(t, p) for t, p in partitions], timeout=timeout)
        except KafkaException as exc:
            raise PublishError(f"reading the view's transactional offsets: "
                               f"{describe_kafka_error(exc)}") from None
        return {(tp.topic, tp.partition): tp.offset for tp in committed if tp.offset >= 0}

    def close(self, timeout: float) -> None:
        self.abort_batch()
        self._producer.flush(timeout)
