"""The window between EndTxn and the transaction being complete (its markers
written and fsync'd, then its COMPLETE state written), over the wire.

- The producer's next requests wait in the broker for the previous transaction
  to complete instead of failing at once: franz-go retried the NOT_ENOUGH_REPLICAS
  of a v12 produce only after its produce backoff (250 ms and up), which made
  TestTxnEtl at 500000 records several times slower than on Kafka.
- A read_committed fetch parked in purgatory returns as soon as the markers move
  the last stable offset past the records, not at its max wait.
- The COMPLETE state is never written before the markers are durable; a
  coordinator that restarts in the PREPARE state writes the markers again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import time
from typing import Any

from kio.schema.fetch.v12 import request as fr

from strom.coordinator.txn import records as rec
from strom.coordinator.txn.state import TxnState
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.testing import EmbeddedBroker
from tests.broker.test_txn_wire import (
    TOPIC,
    HeldMarkers,
    _end_txn,
    _init_producer_id,
    _produce,
    _wait_state,
)
from tests.wire import WireClient, metadata_request

READ_COMMITTED = 1


def _in_thread(fn: Any, *args: Any) -> concurrent.futures.Future[Any]:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(fn, *args)
    pool.shutdown(wait=False)
    return future


def _timed(bootstrap: str, fn: Any, *args: Any) -> tuple[Any, float]:
    with WireClient(bootstrap) as client:
        started = time.monotonic()
        result = fn(client, *args)
        return result, time.monotonic() - started


def _fetch_committed(client: WireClient, offset: int, max_wait_s: float) -> Any:
    response = client.request(ApiKey.FETCH, 12, fr.FetchRequest(
        max_wait=datetime.timedelta(seconds=max_wait_s), min_bytes=1,
        isolation_level=READ_COMMITTED, topics=(fr.FetchTopic(topic=TOPIC, partitions=(
            fr.FetchPartition(partition=0, fetch_offset=offset,
                              partition_max_bytes=1 << 20),)),),
        forgotten_topics_data=()))
    return response.responses[0].partitions[0]


def _setup(broker: EmbeddedBroker, client: WireClient) -> tuple[int, HeldMarkers]:
    client.request(ApiKey.METADATA, 12, metadata_request(TOPIC))
    pid = _init_producer_id(client)
    return pid, HeldMarkers(broker)


def test_next_requests_wait_for_the_previous_transaction(
        fresh_broker: EmbeddedBroker) -> None:
    fresh_broker.services.transactions.settle_wait_s = 10.0
    with WireClient(fresh_broker.bootstrap) as client:
        pid, markers = _setup(fresh_broker, client)
        assert _produce(client, pid, 0, 0) == ErrorCode.none
        assert _end_txn(client, pid, 0, True) == (ErrorCode.none, pid, 1)
        # The commit's markers are held: the next transaction's produce (which
        # adds its partition, v12) and an EndTxn wait for them instead of failing.
        produce = _in_thread(_timed, fresh_broker.bootstrap, _produce, pid, 1, 0)
        time.sleep(0.3)
        assert not produce.done()
        markers.release()
        code, waited = produce.result(timeout=10)
        assert code == ErrorCode.none
        assert 0.2 < waited < 5
        _wait_state(client, "Ongoing")

        markers = HeldMarkers(fresh_broker)  # holds the next transaction's markers
        assert _end_txn(client, pid, 1, False) == (ErrorCode.none, pid, 2)
        retry = _in_thread(_timed, fresh_broker.bootstrap, _end_txn, pid, 2, True)
        time.sleep(0.3)
        assert not retry.done()
        markers.release()
        (code, _, epoch), _ = retry.result(timeout=10)
        # Nothing was added since the abort: committing an empty transaction is
        # invalid, as in Kafka; what matters is that it waited for the abort.
        assert code == ErrorCode.invalid_txn_state
        assert epoch == -1


def test_wait_is_bounded_then_concurrent_transactions(fresh_broker: EmbeddedBroker) -> None:
    fresh_broker.services.transactions.settle_wait_s = 0.2
    with WireClient(fresh_broker.bootstrap) as client:
        pid, markers = _setup(fresh_broker, client)
        assert _produce(client, pid, 0, 0) == ErrorCode.none
        assert _end_txn(client, pid, 0, True) == (ErrorCode.none, pid, 1)
        started = time.monotonic()
        assert _end_txn(client, pid, 1, False)[0] == ErrorCode.concurrent_transactions
        assert _produce(client, pid, 1, 0) == ErrorCode.not_enough_replicas
        assert 0.35 < time.monotonic() - started < 5
        markers.release()
        _wait_state(client, "CompleteCommit")


def test_read_committed_fetch_in_purgatory_wakes_when_lso_passes_records(
        fresh_broker: EmbeddedBroker) -> None:
    with WireClient(fresh_broker.bootstrap) as client:
        pid, markers = _setup(fresh_broker, client)
        assert _produce(client, pid, 0, 0) == ErrorCode.none
        # Open transaction: nothing is stable yet, the fetch parks for up to 8 s.
        fetch = _in_thread(_timed, fresh_broker.bootstrap, _fetch_committed, 0, 8.0)
        time.sleep(0.3)
        assert not fetch.done()
        assert _end_txn(client, pid, 0, True) == (ErrorCode.none, pid, 1)
        time.sleep(0.3)
        assert not fetch.done()  # markers held: the LSO has not moved
        markers.release()
        partition, waited = fetch.result(timeout=10)
        assert waited < 3, f"read_committed fetch returned after {waited:.1f}s"
        assert partition.error_code == ErrorCode.none
        assert partition.last_stable_offset == partition.high_watermark == 2
        assert len(partition.records) > 0


def _txn_states(broker: EmbeddedBroker) -> list[TxnState]:
    out = []
    for record in broker.records("__transaction_state"):
        if record.key is None or record.value is None:
            continue
        tid = rec.decode_key(record.key)
        if tid is not None:
            out.append(rec.decode_value(tid, record.value).state)
    return out


def test_complete_waits_for_durable_markers_and_restart_resends_them(
        fresh_broker: EmbeddedBroker) -> None:
    services = fresh_broker.services
    flusher = services.replicas.flusher
    data_log = services.replicas.partitions.get((TOPIC, 0))
    gate: list[asyncio.Event] = []
    original = flusher.wait_durable

    async def gated(log: Any, end_offset: int) -> None:
        if log is not data_log:
            return await original(log, end_offset)
        if not gate:
            gate.append(asyncio.Event())
        await gate[0].wait()  # this partition never becomes durable
        return await original(log, end_offset)

    with WireClient(fresh_broker.bootstrap) as client:
        client.request(ApiKey.METADATA, 12, metadata_request(TOPIC))
        data_log = services.replicas.partitions[(TOPIC, 0)].log
        flusher.wait_durable = gated
        pid = _init_producer_id(client)
        # The produce is acks=all: its durability wait is gated too; let it time
        # out in the background and only look at the coordinator.
        produce = _in_thread(_timed, fresh_broker.bootstrap, _produce, pid, 0, 0)
        deadline = time.monotonic() + 10
        while "Ongoing" not in {s.display for s in _txn_states(fresh_broker)}:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert _end_txn(client, pid, 0, True) == (ErrorCode.none, pid, 1)
        time.sleep(0.5)
        # Markers written (in the page cache) but not durable: no COMPLETE record,
        # the transaction is still completing.
        states = _txn_states(fresh_broker)
        assert states[-1] is TxnState.PREPARE_COMMIT
        assert TxnState.COMPLETE_COMMIT not in states
        produce.result(timeout=10)
    # A crash here would leave PrepareCommit as the last state; a restart loads
    # it and writes the markers again (a second COMMIT marker is harmless).
    fresh_broker.restart()
    with WireClient(fresh_broker.bootstrap) as client:
        _wait_state(client, "CompleteCommit")
        assert _txn_states(fresh_broker)[-1] is TxnState.COMPLETE_COMMIT

        async def lso() -> tuple[int, int]:
            p = fresh_broker.services.replicas.partitions[(TOPIC, 0)]
            return p.last_stable_offset, p.high_watermark
        stable, high = fresh_broker.run(lso())
        assert stable == high
