"""The outbox: records a handler publishes, exactly once, without broker transactions.

A handler's `ctx.publish(...)` does not produce: it writes an entry to the
`__outbox` table in the same store transaction as the view's changes and
offsets. So an entry exists if and only if the event that caused it was
applied, once. After each commit the relay produces the committed entries
with an idempotent producer and deletes them once acknowledged.

The one window left is a crash after the cluster acknowledged an entry and
before the store deleted it. Every produced record carries the header
`outbox-id: <outbox id>:<seq>`, and the store remembers, per target
partition, the offset of the last acknowledged record (`__outbox_state`,
advanced only after a relay round in which every record was acknowledged,
so every record of ours not yet confirmed lies after it). On start, or after
a delivery failed, `recover` reads each target partition from there to its
high watermark and deletes the entries it finds: they were published.

Tables (JSON values):
    __outbox        "<seq, 20 digits>" -> {"t": topic, "k": key b64|null,
                                          "v": value b64|null, "h": [[name, b64]]}
    __outbox_state  "id" -> random id of this outbox (a cleared store gets a new one)
                    "next_seq" -> int
                    "last" -> {"<topic>\\u0000<partition>": offset}
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from strom.views.errors import BrokerUnavailable
from strom.views.kafka import client_config, high_watermarks, topic_partitions
from strom.views.store import StoreTransaction, ViewStore

__all__ = ["Outbox", "OUTBOX_TABLE", "OUTBOX_STATE_TABLE", "OUTBOX_ID_HEADER"]

log = logging.getLogger("strom.views")

OUTBOX_TABLE = "__outbox"
OUTBOX_STATE_TABLE = "__outbox_state"
OUTBOX_ID_HEADER = "outbox-id"
_ROUND = 10_000  # entries produced per relay round; below librdkafka's queue limit


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def _pairs(headers: Any) -> list[tuple[str, Any]]:
    if not headers:
        return []
    return list(headers.items()) if isinstance(headers, dict) else list(headers)


def add_entry(tx: StoreTransaction, topic: str, key: bytes | None, value: bytes | None,
              headers: Sequence[tuple[str, bytes]]) -> None:
    """Write one outbox entry in the handler's transaction."""
    seq = tx.get(OUTBOX_STATE_TABLE, "next_seq")
    if seq is None:
        seq = 0
        if tx.get(OUTBOX_STATE_TABLE, "id") is None:
            tx.put(OUTBOX_STATE_TABLE, "id", uuid.uuid4().hex[:12])
    tx.put(OUTBOX_STATE_TABLE, "next_seq", seq + 1)
    tx.put(OUTBOX_TABLE, f"{seq:020d}",
           {"t": topic, "k": _b64(key), "v": _b64(value),
            "h": [[name, _b64(val)] for name, val in headers]})


class Outbox:
    """Relays committed outbox entries. Used only by the view's loop thread,
    between store transactions (the store has a single writer)."""

    def __init__(self, view_name: str, bootstrap: str, store: ViewStore,
                 producer_config: dict[str, Any], consumer_config: dict[str, Any],
                 request_timeout: float) -> None:
        self.view_name = view_name
        self.bootstrap = bootstrap
        self.store = store
        self._consumer_config = consumer_config
        self._request_timeout = request_timeout
        self._producer = Producer(client_config(
            bootstrap, producer_config, enable_idempotence=True, acks="all",
            linger_ms=2, partitioner="murmur2_random"))
        # seq -> (topic, partition, offset) or an error; None while in flight
        self._round: dict[int, tuple[str, int, int] | KafkaError | None] = {}
        self._outstanding = 0
        self._uncertain = True  # a previous process may have crashed mid-round
        self.pending = self._count()

    def _count(self) -> int:
        with self.store.snapshot() as snap:
            return snap.count(OUTBOX_TABLE)

    def refresh(self) -> None:
        """Re-read the pending count after a commit that may have added entries."""
        self.pending = self._count()

    # --- relay --------------------------------------------------------------------------

    def relay(self, wait: float) -> None:
        """Produce committed entries; wait up to `wait` seconds for acknowledgements."""
        if self._round:
            self._producer.flush(wait)
            if self._outstanding:
                return
            self._finish_round()
        if self.pending == 0:
            return
        if self._uncertain:
            self.recover(self._request_timeout)
            if self.pending == 0:
                return
        with self.store.snapshot() as snap:
            outbox_id = snap.get(OUTBOX_STATE_TABLE, "id") or ""
            entries = snap.items(OUTBOX_TABLE, limit=_ROUND)
        for key, entry in entries:
            seq = int(key)
            self._round[seq] = None
            self._outstanding += 1
            headers: list[tuple[str, str | bytes | None]] = [
                (name, _unb64(val) or b"") for name, val in entry["h"]]
            headers.append((OUTBOX_ID_HEADER, f"{outbox_id}:{seq}".encode()))
            self._producer.produce(entry["t"], value=_unb64(entry["v"]), key=_unb64(entry["k"]),
                                   headers=headers, on_delivery=self._delivered(seq))
        self._producer.flush(wait)
        if not self._outstanding:
            self._finish_round()

    def _delivered(self, seq: int) -> Any:
        def done(err: KafkaError | None, msg: Message) -> None:
            self._outstanding -= 1
            if err is not None:
                self._round[seq] = err
            else:
                self._round[seq] = (msg.topic() or "", msg.partition() or 0, msg.offset() or 0)

        return done

    def _finish_round(self) -> None:
        results, self._round = self._round, {}
        failed = [r for r in results.values() if isinstance(r, KafkaError)]
        acked = {seq: r for seq, r in results.items() if isinstance(r, tuple)}
        tx = self.store.begin()
        try:
            for seq in acked:
                tx.delete(OUTBOX_TABLE, f"{seq:020d}")
            if not failed:
                last = dict(tx.get(OUTBOX_STATE_TABLE, "last") or {})
                for topic, partition, offset in acked.values():
                    name = f"{topic}\0{partition}"
                    last[name] = max(offset, last.get(name, -1))
                tx.put(OUTBOX_STATE_TABLE, "last", last)
            tx.commit()
        except BaseException:
            tx.rollback()
            raise
        self.pending = max(0, self.pending - len(acked))
        if failed:
            # Some of them may have been written after all: find out before retrying.
            self._uncertain = True
            log.warning("view %s: %d outbox records not acknowledged (%s); checking the "
                        "topics before producing them again", self.view_name, len(failed),
                        failed[0].str())

    # --- recovery -----------------------------------------------------------------------

    def recover(self, timeout: float) -> None:
        """Delete the pending entries that are already in their topics."""
        with self.store.snapshot() as snap:
            entries = snap.items(OUTBOX_TABLE)
            outbox_id = snap.get(OUTBOX_STATE_TABLE, "id") or ""
            last: dict[str, int] = snap.get(OUTBOX_STATE_TABLE, "last") or {}
        if not entries:
            self._uncertain = False
            return
        pending = {int(k) for k, _ in entries}
        prefix = f"{outbox_id}:".encode()
        deadline = time.monotonic() + timeout
        consumer = Consumer(client_config(self.bootstrap, self._consumer_config,
                                          group_id=f"strom-view-{self.view_name}-outbox",
                                          enable_auto_commit=False,
                                          enable_partition_eof=True,
                                          auto_offset_reset="earliest"))
        found: dict[int, tuple[str, int, int]] = {}
        try:
            ranges: dict[tuple[str, int], tuple[int, int]] = {}
            for topic in sorted({e["t"] for _, e in entries}):
                parts = topic_partitions(consumer, topic, max(0.1, deadline - time.monotonic()))
                if not parts:
                    continue
                marks = high_watermarks(consumer, [(topic, p) for p in parts],
                                        max(0.1, deadline - time.monotonic()))
                for tp, (low, high) in marks.items():
                    start = max(low, last.get(f"{tp[0]}\0{tp[1]}", -1) + 1)
                    if start < high:
                        ranges[tp] = (start, high)
            if ranges:
                consumer.assign([TopicPartition(t, p, lo) for (t, p), (lo, _) in ranges.items()])
                open_ranges = dict(ranges)
                while open_ranges:
                    if time.monotonic() > deadline:
                        raise BrokerUnavailable(
                            f"view {self.view_name}: outbox recovery did not finish reading "
                            f"{sorted(open_ranges)} within {timeout:g}s")
                    for msg in consumer.consume(1000, 0.2):
                        tp = (msg.topic() or "", msg.partition() or 0)
                        err = msg.error()
                        offset = msg.offset() or 0
                        if err is None:
                            for name, val in _pairs(msg.headers()):
                                if (name == OUTBOX_ID_HEADER and isinstance(val, bytes)
                                        and val.startswith(prefix)):
                                    seq = int(val[len(prefix):])
                                    if seq in pending:
                                        found[seq] = (tp[0], tp[1], offset)
                            offset += 1
                        elif err.code() != KafkaError._PARTITION_EOF:
                            continue
                        if tp in open_ranges and offset >= open_ranges[tp][1]:
                            del open_ranges[tp]
        finally:
            consumer.close()
        tx = self.store.begin()
        try:
            new_last = dict(last)
            for seq, (topic, partition, offset) in found.items():
                tx.delete(OUTBOX_TABLE, f"{seq:020d}")
                name = f"{topic}\0{partition}"
                new_last[name] = max(offset, new_last.get(name, -1))
            tx.put(OUTBOX_STATE_TABLE, "last", new_last)
            tx.commit()
        except BaseException:
            tx.rollback()
            raise
        self.pending = len(pending) - len(found)
        self._uncertain = False
        if found:
            log.info("view %s: %d outbox records were already published before a restart",
                     self.view_name, len(found))

    def close(self, timeout: float) -> None:
        if self._round:
            self._producer.flush(timeout)
            if not self._outstanding:
                self._finish_round()
