"""The loop that feeds a view: consume a batch, apply it, commit it with its offsets.

One runner thread per started view owns the consumer, the output and the
store's write transaction (one owner per piece of mutable state). It shares
progress with readers through `ViewStatus`, under one condition variable.

Per batch: every record is dispatched to its handler inside one store
transaction, the next offset of each partition is written in the same
transaction, then it commits. A handler that raises rolls the whole batch
back and fails the view; a crash anywhere loses at most the uncommitted
batch, which is consumed again from the committed offsets. Partition EOF
events move a position past records the log no longer holds (compaction,
transaction markers), so catching up to a high watermark always ends.

Partitions are assigned by the view itself (no consumer group): every
partition of every topic, re-checked every `metadata_interval` seconds (and
at once when `catch_up` asks), so topics created later are picked up.
Every call to the cluster has a deadline; when the cluster is unreachable
the runner records the error, keeps serving snapshots, and retries.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from strom.views.errors import BrokerUnavailable, UnknownEventType, ViewFailed, ViewsError
from strom.views.events import event_type_of
from strom.views.kafka import client_config, high_watermarks, topic_partitions
from strom.views.outputs import OutboxOutput, Output, TransactionalOutput
from strom.views.progress import ViewState
from strom.views.store import StoreTransaction, ViewStore
from strom.views.store import TopicPartition as TP

if TYPE_CHECKING:
    from strom.views.view import Context, ViewSpec, ViewStatus

__all__ = ["Runner"]

log = logging.getLogger("strom.views")

_OFFSET_ERRORS = (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE)


class Runner:
    def __init__(self, spec: ViewSpec, store: ViewStore, status: ViewStatus,
                 context: Context, suppress_below: dict[TP, int] | None = None) -> None:
        self.spec = spec
        self.store = store
        self.status = status
        self.ctx = context
        self.suppress_below = dict(suppress_below or {})
        self._stop = threading.Event()
        self._final = ViewState.STOPPED
        self._refresh = threading.Event()
        self._assigned: set[TP] = set()
        self._positions: dict[TP, int] = {}
        self._next_metadata = 0.0
        self._need_targets = True
        # restore_first: the other topics stay paused until these reached the high
        # watermarks they had at start (a table restored before the stream that
        # joins it, like Kafka Streams' global tables). None once released.
        self._gate: dict[TP, int] | None = {} if spec.restore_first else None
        self._paused: set[TP] = set()
        self._next_targets = 0.0
        self._next_report = 0.0
        self._consumer: Consumer | None = None
        self._output: Output | None = None
        self.thread = threading.Thread(target=self._run, name=f"strom-view-{spec.name}",
                                       daemon=True)

    # --- control (any thread) -----------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float, *, pause: bool = False) -> None:
        self._final = ViewState.PAUSED if pause else ViewState.STOPPED
        self._stop.set()
        self.thread.join(timeout)
        if self.thread.is_alive():
            log.warning("view %s: runner did not stop within %gs", self.spec.name, timeout)

    def request_refresh(self) -> None:
        self._refresh.set()

    # --- the loop (runner thread) -------------------------------------------------------

    def _run(self) -> None:
        spec = self.spec
        try:
            consumer = self._consumer = Consumer(client_config(
                spec.bootstrap, spec.consumer_config,
                group_id=f"strom-view-{spec.name}", enable_auto_commit=False,
                enable_auto_offset_store=False, enable_partition_eof=True,
                auto_offset_reset="error", isolation_level="read_committed",
                fetch_wait_max_ms=100, error_cb=self._client_error))
            if spec.transactional_id is not None:
                self._output = TransactionalOutput(
                    spec.name, spec.bootstrap, spec.transactional_id, consumer,
                    dict(spec.producer_config), spec.request_timeout)
            else:
                self._output = OutboxOutput(spec.name, spec.bootstrap, self.store,
                                            dict(spec.producer_config),
                                            dict(spec.consumer_config), spec.request_timeout)
            self.ctx.bind(self._output)
            self.status.set_outbox(self._output.pending())
            stored = self.store.offsets()
            self._positions = {tp: o for tp, o in stored.items() if tp[0] in spec.topics}
            self.status.started(self._positions)
            while not self._stop.is_set():
                self._step()
            self.status.transition(self._final)
        except BaseException as exc:  # the view fails; readers see why
            self.status.fail(exc)
            log.error("view %s failed: %s", spec.name, exc, exc_info=not isinstance(
                exc, ViewsError))
        finally:
            self._close()

    def _close(self) -> None:
        if self._output is not None:
            try:
                self._output.close(min(5.0, self.spec.request_timeout))
            except BaseException as exc:  # closing must not mask why the runner stopped
                log.warning("view %s: closing its output: %s", self.spec.name, exc)
        if self._consumer is not None:
            self._consumer.close()

    def _client_error(self, err: KafkaError) -> None:
        self.status.broker_trouble(f"{err.name()}: {err.str()}")

    def _step(self) -> None:
        now = time.monotonic()
        spec = self.spec
        if self._refresh.is_set() or now >= self._next_metadata:
            self._refresh.clear()
            self._refresh_assignment(now)
        if self._need_targets and now >= self._next_targets:
            self._restore_targets(now)
        assert self._consumer is not None and self._output is not None
        msgs = self._consumer.consume(spec.max_batch, spec.poll_timeout)
        if msgs:
            self._apply(msgs)
        if self._output.pending():
            self._output.idle(0.0 if msgs else spec.poll_timeout)
            self.status.set_outbox(self._output.pending())
        if now >= self._next_report:
            self._next_report = now + spec.progress_interval
            self.status.report()

    def _refresh_assignment(self, now: float) -> None:
        assert self._consumer is not None and self._output is not None
        spec = self.spec
        timeout = min(spec.request_timeout, 2.0)
        missing = False
        new: list[TP] = []
        resume: dict[TP, int] = {}
        try:
            for topic in spec.topics:
                parts = topic_partitions(self._consumer, topic, timeout)
                if parts is None:
                    missing = True
                    continue
                new.extend((topic, p) for p in parts if (topic, p) not in self._assigned)
            if new:
                resume = self._output.resume_offsets(new, spec.request_timeout)
        except BrokerUnavailable as exc:
            self.status.broker_trouble(str(exc))
            self._next_metadata = now + 1.0
            return
        self._next_metadata = now + (0.5 if missing else spec.metadata_interval)
        self.status.broker_ok()
        if not new:
            return
        assignment = []
        for tp in new:
            start = self._positions.get(tp)
            assignment.append(TopicPartition(tp[0], tp[1],
                                             OFFSET_BEGINNING if start is None else start))
            if resume.get(tp, -1) > (start or 0):
                self.suppress_below[tp] = resume[tp]
            self._positions.setdefault(tp, 0)
        self._consumer.incremental_assign(assignment)
        if self._gate is not None:
            held = [TopicPartition(t, p) for t, p in new if t not in spec.restore_first]
            if held:
                self._consumer.pause(held)
                self._paused.update((tp.topic, tp.partition) for tp in held)
        self._assigned.update(new)
        self.status.assigned(new, self._positions)
        log.debug("view %s: assigned %s", spec.name, new)

    def _restore_targets(self, now: float) -> None:
        """The high watermarks the view restores to before it calls itself live."""
        assert self._consumer is not None
        try:
            marks = high_watermarks(self._consumer, sorted(self._assigned),
                                    self.spec.request_timeout)
        except BrokerUnavailable as exc:
            self.status.broker_trouble(str(exc))
            self._next_targets = now + 1.0
            return
        self._need_targets = False
        self.status.set_targets(marks)
        if self._gate is not None:
            self._gate = {tp: high for tp, (_, high) in marks.items()
                          if tp[0] in self.spec.restore_first}
            self._open_gate()

    def _open_gate(self) -> None:
        """Resume the paused topics once the restore_first topics are restored."""
        gate = self._gate
        if gate is None or self._need_targets:
            return
        if all(self._positions.get(tp, 0) >= high for tp, high in gate.items()):
            self._gate = None
            if self._paused:
                assert self._consumer is not None
                self._consumer.resume([TopicPartition(t, p) for t, p in self._paused])
                log.info("view %s: %s restored; applying %s", self.spec.name,
                         ", ".join(self.spec.restore_first),
                         ", ".join(t for t in self.spec.topics
                                   if t not in self.spec.restore_first))
                self._paused.clear()

    def _apply(self, msgs: list[Message]) -> None:
        assert self._output is not None
        output = self._output
        positions = self._positions
        suppress = self.suppress_below
        ctx = self.ctx
        dispatch = self._dispatch
        moved: dict[TP, int] = {}
        applied = 0
        tx: StoreTransaction = self.store.begin()
        ctx.tx = tx
        output.begin_batch()
        try:
            for msg in msgs:
                err = msg.error()
                topic = msg.topic() or ""
                partition = msg.partition() or 0
                offset = msg.offset() or 0
                tp = (topic, partition)
                if err is not None:
                    self._record_error(err, tp, offset, moved)
                    continue
                expected = moved.get(tp, positions.get(tp, 0))
                if offset < expected:
                    raise ViewFailed(
                        f"view {self.spec.name}: {topic}[{partition}] went back from offset "
                        f"{expected} to {offset}; was the topic deleted and re-created? "
                        "Rebuild the view")
                ctx.msg = msg
                ctx.suppressed = bool(suppress) and offset < suppress.get(tp, -1)
                dispatch(msg, tp, offset)
                moved[tp] = offset + 1
                applied += 1
            if not moved:
                tx.rollback()
                output.abort_batch()
                return
            for (topic, partition), offset in moved.items():
                tx.set_offset(topic, partition, offset)
            output.before_commit(moved)
            tx.commit()
        except BaseException:
            tx.rollback()
            output.abort_batch()
            raise
        finally:
            ctx.msg = None
        positions.update(moved)
        if self._gate is not None:
            self._open_gate()
        output.after_commit()
        # Positions and the outbox count change together for readers: a catch-up
        # waiting for outputs never sees the new positions with a stale count.
        self.status.committed(moved, applied, output.pending())

    def _record_error(self, err: KafkaError, tp: TP, offset: int, moved: dict[TP, int]) -> None:
        code = err.code()
        if code == KafkaError._PARTITION_EOF:
            if offset > moved.get(tp, self._positions.get(tp, 0)):
                moved[tp] = offset
            self.status.broker_ok()
        elif code in _OFFSET_ERRORS:
            raise ViewFailed(
                f"view {self.spec.name}: {tp[0]}[{tp[1]}]: the view's position is no longer "
                f"in the log ({err.str()}). Retention deleted records it had not applied, or "
                "the topic was re-created: rebuild the view, or keep records longer")
        else:
            self.status.broker_trouble(f"{err.name()}: {err.str()}")

    def _dispatch(self, msg: Message, tp: TP, offset: int) -> None:
        spec = self.spec
        value = msg.value()
        if value is None:
            tombstone = spec.tombstone_handlers.get(tp[0]) or spec.tombstone_handlers.get(None)
            if tombstone is not None:
                self._call(tombstone, msg.key(), tp, offset, "tombstone")
            elif spec.other_handler is not None:
                self._call(spec.other_handler, None, tp, offset, "record")
            return
        headers = msg.headers()
        name, version = event_type_of(headers)
        handler = spec.handlers_by_name.get(name) if name is not None else None
        if handler is not None:
            assert name is not None
            try:
                event = spec.registry.decode_typed(name, version, value)
            except ViewsError as exc:
                raise ViewFailed(f"view {spec.name}: cannot decode {tp[0]}[{tp[1]}]@{offset}: "
                                 f"{exc}") from exc
            self._call(handler, event, tp, offset, name.decode(errors="replace"))
        elif spec.other_handler is not None:
            self._call(spec.other_handler, None, tp, offset, "record")
        elif spec.on_unknown == "fail":
            raise ViewFailed(f"view {spec.name}: no handler for {tp[0]}[{tp[1]}]@{offset} "
                             f"(event type {name!r})") from UnknownEventType(repr(name))

    def _call(self, handler: Any, arg: Any, tp: TP, offset: int, what: str) -> None:
        try:
            if what == "record":
                handler(self.ctx)
            else:
                handler(arg, self.ctx)
        except ViewFailed:
            raise
        except Exception as exc:
            raise ViewFailed(f"view {self.spec.name}: {what} handler failed at "
                             f"{tp[0]}[{tp[1]}]@{offset}: {type(exc).__name__}: {exc}") from exc
