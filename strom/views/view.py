"""A view (read model): topics in, a local store out, queryable while it runs.

    view = View("shipping", bootstrap="localhost:9092", topics=["orders"],
                registry=registry, store=SQLiteStore("shipping.db"))

    @view.on(OrderPlaced)
    def place(event: OrderPlaced, ctx: Context) -> None:
        ctx.put("shipments", event.order_id, {...})
        ctx.publish("shipments", ShipmentCreated(...), key=event.order_id)

    with view:                      # starts the runner thread
        view.catch_up(timeout=30)   # everything that existed when asked is applied
        with view.snapshot() as s:  # a consistent read of the last commit
            s.get("shipments", "o-1")

Each record is applied once, with its offset stored in the same store
transaction (see runner.py); a view does not use consumer groups. Publishing
from a handler goes through the store's outbox (outbox.py), or a Kafka
transaction with `transactional_id=` when the cluster has transactions.
`rebuild()` replays every topic from the beginning into a fresh store beside
the live one and swaps it in when done; the old state serves reads meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from confluent_kafka import Consumer, Message

from strom.views.errors import (
    BrokerUnavailable,
    CatchUpTimeout,
    ViewClosed,
    ViewFailed,
    ViewsError,
)
from strom.views.events import EventRegistry
from strom.views.kafka import client_config, high_watermarks, topic_partitions
from strom.views.outbox import OUTBOX_STATE_TABLE, OUTBOX_TABLE
from strom.views.outputs import Output
from strom.views.progress import Progress, ViewState, check_transition
from strom.views.publisher import encode_key
from strom.views.runner import Runner
from strom.views.store import StoreReader, StoreTransaction, TopicPartition, ViewStore

__all__ = ["View", "Context"]

log = logging.getLogger("strom.views")

E = TypeVar("E")
EventHandler = Callable[[Any, "Context"], None]
TombstoneHandler = Callable[[bytes | None, "Context"], None]
RecordHandler = Callable[["Context"], None]


class Context:
    """What a handler gets besides its event: the store transaction, the record,
    and `publish`. One object, re-pointed at each record."""

    __slots__ = ("tx", "msg", "suppressed", "registry", "_output")

    def __init__(self, registry: EventRegistry) -> None:
        self.registry = registry
        self.tx: StoreTransaction = _NO_TRANSACTION
        self.msg: Message | None = None
        self.suppressed = False
        self._output: Output | None = None

    def bind(self, output: Output) -> None:
        self._output = output

    # --- the record -------------------------------------------------------------------

    def _record(self) -> Message:
        if self.msg is None:
            raise ViewsError("no record: the context is only valid inside a handler")
        return self.msg

    @property
    def topic(self) -> str:
        return self._record().topic() or ""

    @property
    def partition(self) -> int:
        return self._record().partition() or 0

    @property
    def offset(self) -> int:
        return self._record().offset() or 0

    @property
    def key(self) -> bytes | None:
        key = self._record().key()
        return key if isinstance(key, bytes) or key is None else str(key).encode()

    @property
    def value(self) -> bytes | None:
        value = self._record().value()
        return value if isinstance(value, bytes) or value is None else str(value).encode()

    @property
    def timestamp_ms(self) -> int:
        return int(self._record().timestamp()[1])

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        raw = self._record().headers() or []
        pairs = list(raw.items()) if isinstance(raw, dict) else raw
        return [(k, v if isinstance(v, bytes) else (v or "").encode()) for k, v in pairs]

    # --- the store (shortcuts for ctx.tx) ------------------------------------------------

    def get(self, table: str, key: str) -> Any:
        return self.tx.get(table, key)

    def put(self, table: str, key: str, value: Any) -> None:
        self.tx.put(table, key, value)

    def delete(self, table: str, key: str) -> None:
        self.tx.delete(table, key)

    def items(self, table: str, prefix: str = "", *, limit: int | None = None
              ) -> list[tuple[str, Any]]:
        return self.tx.items(table, prefix, limit=limit)

    # --- publishing --------------------------------------------------------------------

    def publish(self, topic: str, event: object, *, key: str | bytes | None,
                headers: Sequence[tuple[str, bytes]] = ()) -> None:
        """Publish an event, exactly once per application of this record."""
        encoded = self.registry.encode(event)
        self.publish_raw(topic, encoded.value, key=key,
                         headers=[*encoded.headers, *headers])

    def publish_raw(self, topic: str, value: bytes | None, *, key: str | bytes | None,
                    headers: Sequence[tuple[str, bytes]] = ()) -> None:
        if self._output is None:
            raise ViewsError("publish outside a running view")
        if self.suppressed:
            return  # replaying what was already published (rebuild or recovery)
        self._output.publish(self.tx, topic, encode_key(key), value, headers)


class _NoTransaction:
    def __getattr__(self, name: str) -> Any:
        raise ViewsError("no store transaction: the context is only valid inside a handler")


_NO_TRANSACTION: Any = _NoTransaction()


@dataclass
class ViewSpec:
    """Everything that defines a view except its store (a rebuild reuses it)."""

    name: str
    bootstrap: str
    topics: tuple[str, ...]
    registry: EventRegistry
    max_batch: int
    poll_timeout: float
    request_timeout: float
    metadata_interval: float
    progress_interval: float
    on_unknown: Literal["skip", "fail"]
    consumer_config: Mapping[str, Any]
    producer_config: Mapping[str, Any]
    transactional_id: str | None
    restore_first: tuple[str, ...] = ()
    handlers_by_name: dict[bytes, EventHandler] = field(default_factory=dict)
    tombstone_handlers: dict[str | None, TombstoneHandler] = field(default_factory=dict)
    other_handler: RecordHandler | None = None


class ViewStatus:
    """Progress shared by the runner (writer) and readers, under `cond`."""

    def __init__(self, name: str, progress_interval: float,
                 on_progress: Callable[[Progress], None] | None) -> None:
        self.name = name
        self.cond = threading.Condition()
        self.state = ViewState.CREATED
        self.positions: dict[TopicPartition, int] = {}
        self.targets: dict[TopicPartition, int] = {}
        self.targets_known = False
        self.log_start: dict[TopicPartition, int] = {}
        self.applied = 0
        self.started_at = time.monotonic()
        self.failure: BaseException | None = None
        self.broker_error: str | None = None
        self.outbox_pending = 0
        self.rate = 0.0
        self._mark = (self.started_at, 0)
        self.on_progress = on_progress
        self.progress_interval = progress_interval

    def transition(self, new: ViewState) -> None:
        with self.cond:
            check_transition(self.state, new)
            self.state = new
            self.cond.notify_all()

    def started(self, positions: dict[TopicPartition, int]) -> None:
        with self.cond:
            check_transition(self.state, ViewState.RESTORING)
            self.state = ViewState.RESTORING
            self.positions = dict(positions)
            self.targets, self.targets_known = {}, False
            self.applied, self.failure = 0, None
            self.started_at = time.monotonic()
            self._mark = (self.started_at, 0)
            self.cond.notify_all()

    def assigned(self, new: list[TopicPartition], positions: dict[TopicPartition, int]) -> None:
        with self.cond:
            for tp in new:
                self.positions.setdefault(tp, positions.get(tp, 0))

    def set_targets(self, marks: dict[TopicPartition, tuple[int, int]]) -> None:
        with self.cond:
            self.targets = {tp: high for tp, (_, high) in marks.items()}
            self.log_start = {tp: low for tp, (low, _) in marks.items()}
            self.targets_known = True
            self.broker_error = None
            self._maybe_live()
            self.cond.notify_all()

    def committed(self, moved: dict[TopicPartition, int], applied: int,
                  outbox_pending: int) -> None:
        with self.cond:
            self.positions.update(moved)
            self.applied += applied
            self.outbox_pending = outbox_pending
            self.broker_error = None
            self._maybe_live()
            self.cond.notify_all()

    def _maybe_live(self) -> None:
        if self.state is ViewState.RESTORING and self.targets_known and all(
                self.positions.get(tp, 0) >= hw for tp, hw in self.targets.items()):
            self.state = ViewState.LIVE
            elapsed = time.monotonic() - self.started_at
            log.info("view %s live: restored %d records in %.1fs", self.name, self.applied,
                     elapsed)

    def set_outbox(self, pending: int) -> None:
        with self.cond:
            self.outbox_pending = pending
            self.cond.notify_all()

    def broker_trouble(self, message: str) -> None:
        with self.cond:
            if self.broker_error is None:
                log.warning("view %s: %s (serving the last consistent state, retrying)",
                            self.name, message)
            self.broker_error = message

    def broker_ok(self) -> None:
        with self.cond:
            self.broker_error = None

    def fail(self, exc: BaseException) -> None:
        with self.cond:
            self.failure = exc
            if self.state is not ViewState.FAILED:
                check_transition(self.state, ViewState.FAILED)
                self.state = ViewState.FAILED
            self.cond.notify_all()

    def progress(self) -> Progress:
        with self.cond:
            return Progress(self.name, self.state, dict(self.positions), dict(self.targets),
                            self.applied, time.monotonic() - self.started_at, self.rate,
                            self.broker_error, dict(self.log_start))

    def report(self) -> None:
        now = time.monotonic()
        with self.cond:
            then, applied_then = self._mark
            if now > then:
                self.rate = (self.applied - applied_then) / (now - then)
            self._mark = (now, self.applied)
            restoring = self.state is ViewState.RESTORING
        if restoring:
            progress = self.progress()
            log.info("%s", progress)
            if self.on_progress is not None:
                self.on_progress(progress)


class View:
    def __init__(self, name: str, *, bootstrap: str, topics: Sequence[str],
                 registry: EventRegistry | None = None, store: ViewStore | None = None,
                 max_batch: int = 5000, poll_timeout: float = 0.1,
                 request_timeout: float = 10.0, metadata_interval: float = 5.0,
                 progress_interval: float = 2.0,
                 on_progress: Callable[[Progress], None] | None = None,
                 on_unknown: Literal["skip", "fail"] = "skip",
                 consumer_config: Mapping[str, Any] | None = None,
                 producer_config: Mapping[str, Any] | None = None,
                 transactional_id: str | None = None,
                 restore_first: Sequence[str] = ()) -> None:
        """`store` defaults to SQLiteStore("<name>.view.db") in the working directory.
        `restore_first`: topics (tables, say customer addresses) applied up to the
        high watermark they had at start before any record of the other topics.
        `transactional_id` publishes through Kafka transactions instead of the outbox
        (raises TransactionsUnsupported at start on a cluster without them)."""
        if not topics:
            raise ValueError("a view needs at least one topic")
        if not set(restore_first) <= set(topics):
            raise ValueError("restore_first must be some of the view's topics")
        self.spec = ViewSpec(name, bootstrap, tuple(topics), registry or EventRegistry(),
                             max_batch, poll_timeout, request_timeout, metadata_interval,
                             progress_interval, on_unknown, dict(consumer_config or {}),
                             dict(producer_config or {}), transactional_id,
                             tuple(restore_first))
        self._owns_store = store is None
        if store is None:
            from strom.views.sqlite import SQLiteStore

            store = SQLiteStore(Path(f"{name}.view.db"))
        self.store: ViewStore = store
        self.status = ViewStatus(name, progress_interval, on_progress)
        self._runner: Runner | None = None
        self._suppress_below: dict[TopicPartition, int] = {}
        self._query_lock = threading.Lock()
        self._query_consumer: Consumer | None = None
        self._lifecycle = threading.Lock()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def registry(self) -> EventRegistry:
        return self.spec.registry

    # --- handlers -------------------------------------------------------------------------

    def on(self, event_type: type[E]) -> Callable[[Callable[[E, Context], None]],
                                                   Callable[[E, Context], None]]:
        """Decorator: `handler(event, ctx)` applies events of `event_type`."""
        name = self.spec.registry.name_of(event_type).encode()

        def register(fn: Callable[[E, Context], None]) -> Callable[[E, Context], None]:
            self.spec.handlers_by_name[name] = fn
            return fn

        return register

    def on_tombstone(self, topic: str | None = None
                     ) -> Callable[[TombstoneHandler], TombstoneHandler]:
        """Decorator: `handler(key, ctx)` for records without a value (deletions in
        a compacted topic), of `topic` or of any topic."""

        def register(fn: TombstoneHandler) -> TombstoneHandler:
            self.spec.tombstone_handlers[topic] = fn
            return fn

        return register

    def on_other(self, fn: RecordHandler) -> RecordHandler:
        """Decorator: `handler(ctx)` for records no event handler takes (read
        `ctx.value`, `ctx.headers`). Without it they are skipped, or fail the view
        with on_unknown="fail"."""
        self.spec.other_handler = fn
        return fn

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> View:
        with self._lifecycle:
            if self._runner is not None and self._runner.thread.is_alive():
                return self
            runner = Runner(self.spec, self.store, self.status, Context(self.spec.registry),
                            self._suppress_below)
            self._runner = runner
            runner.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        with self._lifecycle:
            self._stop_runner(timeout)
            if self.status.state is ViewState.CREATED:
                self.status.transition(ViewState.STOPPED)

    def _stop_runner(self, timeout: float, *, pause: bool = False) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.stop(timeout, pause=pause)

    def close(self) -> None:
        """Stop, release the client, and close the store if the view opened it."""
        self.stop()
        with self._query_lock:
            if self._query_consumer is not None:
                self._query_consumer.close()
                self._query_consumer = None
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> View:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading ---------------------------------------------------------------------------

    def snapshot(self) -> AbstractContextManager[StoreReader]:
        """A consistent, read-only view of the last committed batch."""
        return self.store.snapshot()

    def progress(self) -> Progress:
        return self.status.progress()

    @property
    def state(self) -> ViewState:
        return self.status.state

    def positions(self) -> dict[TopicPartition, int]:
        with self.status.cond:
            return dict(self.status.positions)

    # --- catching up ------------------------------------------------------------------------

    def _query(self) -> Consumer:
        if self._query_consumer is None:
            self._query_consumer = Consumer(client_config(
                self.spec.bootstrap, self.spec.consumer_config,
                group_id=f"strom-view-{self.spec.name}-query", enable_auto_commit=False))
        return self._query_consumer

    def high_watermarks(self, timeout: float = 10.0) -> dict[TopicPartition, int]:
        """Every partition's high watermark now (ListOffsets), for the view's topics."""
        deadline = time.monotonic() + timeout
        with self._query_lock:
            consumer = self._query()
            partitions: list[TopicPartition] = []
            for topic in self.spec.topics:
                left = max(0.01, deadline - time.monotonic())
                partitions += [(topic, p) for p in topic_partitions(consumer, topic, left) or []]
            left = max(0.01, deadline - time.monotonic())
            marks = high_watermarks(consumer, partitions, left)
        return {tp: high for tp, (_, high) in marks.items()}

    def lag(self, timeout: float = 10.0) -> dict[TopicPartition, int]:
        """Records per partition between the view's position and the high watermark."""
        marks = self.high_watermarks(timeout)
        positions = self.positions()
        return {tp: max(0, hw - positions.get(tp, 0)) for tp, hw in marks.items()}

    def catch_up(self, timeout: float = 30.0, *, published: bool = False,
                 on_progress: Callable[[Progress], None] | None = None) -> Progress:
        """Wait until every record that existed when called is applied (and, with
        `published`, every output of the view acknowledged). Raises CatchUpTimeout,
        BrokerUnavailable (the cluster did not answer in time) or ViewFailed."""
        deadline = time.monotonic() + timeout
        self._check_running()
        try:
            targets = self.high_watermarks(timeout)
        except BrokerUnavailable as exc:
            raise BrokerUnavailable(f"view {self.name}: cannot catch up: {exc}; serving the "
                                    "last consistent state") from None
        return self.wait_for(targets, max(0.0, deadline - time.monotonic()),
                             published=published, on_progress=on_progress)

    def wait_for(self, targets: Mapping[TopicPartition, int], timeout: float, *,
                 published: bool = False,
                 on_progress: Callable[[Progress], None] | None = None) -> Progress:
        """Wait until the view's position is at least `targets` in each partition
        (e.g. the offset after a record you published, to read your own write)."""
        deadline = time.monotonic() + timeout
        status = self.status
        runner = self._runner
        if runner is not None and any(tp not in status.positions for tp in targets):
            runner.request_refresh()
        next_report = time.monotonic() + status.progress_interval
        with status.cond:
            while True:
                if status.failure is not None:
                    raise ViewFailed(f"view {self.name} failed: {status.failure}"
                                     ) from status.failure
                if status.state is ViewState.STOPPED or (
                        status.state is ViewState.CREATED and self._runner is None):
                    raise ViewClosed(f"view {self.name} is {status.state.value}")
                lag = {tp: target - status.positions.get(tp, 0)
                       for tp, target in targets.items()
                       if status.positions.get(tp, 0) < target}
                if not lag and (not published or status.outbox_pending == 0):
                    break
                now = time.monotonic()
                if now >= deadline:
                    waiting = (f"{sum(lag.values()):,} records in {len(lag)} partitions"
                               if lag else f"{status.outbox_pending} outbox records")
                    broker = f"; broker: {status.broker_error}" if status.broker_error else ""
                    raise CatchUpTimeout(f"view {self.name} did not catch up within "
                                         f"{timeout:g}s: still {waiting}{broker}", lag)
                if on_progress is not None and now >= next_report:
                    next_report = now + status.progress_interval
                    status.cond.release()
                    try:
                        on_progress(self.progress())
                    finally:
                        status.cond.acquire()
                status.cond.wait(min(deadline - now, status.progress_interval, 0.5))
        return self.progress()

    def _check_running(self) -> None:
        if self._runner is None:
            state = self.status.state
            if state is ViewState.FAILED and self.status.failure is not None:
                raise ViewFailed(f"view {self.name} failed: {self.status.failure}")
            raise ViewClosed(f"view {self.name} is not running (start() it)")

    # --- rebuilding ---------------------------------------------------------------------------

    def rebuild(self, timeout: float = 600.0,
                on_progress: Callable[[Progress], None] | None = None) -> Progress:
        """Replay every topic from the beginning into a fresh store and swap it in.

        The view pauses first, so its current state keeps serving reads, frozen,
        until the swap. Outputs of records the view had already applied are not
        published again; the outbox's pending entries carry over. On failure or
        timeout the old state stays and the view resumes."""
        with self._lifecycle:
            was_running = self._runner is not None
            if was_running:
                self._stop_runner(self.spec.request_timeout + 10, pause=True)
                if self.status.state is ViewState.FAILED:
                    self.status.transition(ViewState.PAUSED)
            applied_before = self.store.offsets()
            shadow_store = self.store.empty_sibling()
            try:
                self._copy_outbox(shadow_store)
                shadow = View(self.name, bootstrap=self.spec.bootstrap,
                              topics=self.spec.topics, registry=self.spec.registry,
                              store=shadow_store, on_progress=on_progress)
                shadow.spec = self.spec
                shadow.status = ViewStatus(self.name, self.spec.progress_interval,
                                           on_progress)
                shadow._suppress_below = {tp: o for tp, o in applied_before.items()
                                          if tp[0] in self.spec.topics}
                shadow.start()
                try:
                    shadow.catch_up(timeout, on_progress=on_progress)
                    result = shadow.progress()
                finally:
                    shadow.stop()
            except BaseException:
                shadow_store.close()
                if was_running:
                    self._restart_runner()
                raise
            self.store.replace_with(shadow_store)
            log.info("view %s rebuilt: %d records in %.1fs", self.name, result.applied,
                     result.elapsed)
            if was_running:
                self._restart_runner()
            return result

    def _restart_runner(self) -> None:
        runner = Runner(self.spec, self.store, self.status, Context(self.spec.registry),
                        self._suppress_below)
        self._runner = runner
        runner.start()

    def _copy_outbox(self, target: ViewStore) -> None:
        with self.store.snapshot() as snap:
            entries = snap.items(OUTBOX_TABLE)
            state = snap.items(OUTBOX_STATE_TABLE)
        if not entries and not state:
            return
        tx = target.begin()
        try:
            for key, value in entries:
                tx.put(OUTBOX_TABLE, key, value)
            for key, value in state:
                tx.put(OUTBOX_STATE_TABLE, key, value)
            tx.commit()
        except BaseException:
            tx.rollback()
            raise

    # --- one-shot use -----------------------------------------------------------------------

    def run_until_caught_up(self, timeout: float = 600.0) -> Progress:
        """Start, apply everything that exists now, stop (a batch job)."""
        self.start()
        try:
            return self.catch_up(timeout)
        finally:
            self.stop()
