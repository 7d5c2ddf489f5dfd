"""Transaction version 2 over the wire (Produce v12, EndTxn v5), in the order
franz-go's TestTxnEtl sends them: a transactional consumer commits, its next
transaction aborts at once (nothing to commit), and a late produce names an
epoch that has ended.

The coordinator's markers are held back so the window in which the previous
transaction is still completing is deterministic: franz-go aborted in that
window and got INVALID_TXN_STATE, which ended its session."""

from __future__ import annotations

import asyncio
import datetime
import time
from typing import Any

from kio.schema.describe_transactions.v0.request import DescribeTransactionsRequest
from kio.schema.end_txn.v5.request import EndTxnRequest
from kio.schema.init_producer_id.v5.request import InitProducerIdRequest
from kio.schema.produce.v12 import request as pr

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.protocol.records import RecordSpec, build_batch
from strom.testing import EmbeddedBroker
from tests.wire import WireClient, metadata_request

TID = "tv2-wire"
TOPIC = "tv2-wire"


def _produce(client: WireClient, pid: int, epoch: int, seq: int) -> int:
    batch = build_batch([RecordSpec(value=b"%d-%d" % (epoch, seq))], producer_id=pid,
                        producer_epoch=epoch, base_sequence=seq, transactional=True)
    response = client.request(ApiKey.PRODUCE, 12, pr.ProduceRequest(
        transactional_id=TID, acks=-1, timeout=datetime.timedelta(seconds=5),
        topic_data=(pr.TopicProduceData(name=TOPIC, partition_data=(
            pr.PartitionProduceData(index=0, records=batch),)),)))
    return int(response.responses[0].partition_responses[0].error_code)


def _end_txn(client: WireClient, pid: int, epoch: int, commit: bool) -> tuple[int, int, int]:
    r = client.request(ApiKey.END_TXN, 5, EndTxnRequest(
        transactional_id=TID, producer_id=pid, producer_epoch=epoch, committed=commit))
    return int(r.error_code), int(r.producer_id), int(r.producer_epoch)


def _wait_state(client: WireClient, state: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        r = client.request(ApiKey.DESCRIBE_TRANSACTIONS, 0,
                           DescribeTransactionsRequest(transactional_ids=(TID,)))
        if r.transaction_states[0].transaction_state == state:
            return
        assert time.monotonic() < deadline, f"{TID} never reached {state}"
        time.sleep(0.01)


def _init_producer_id(client: WireClient) -> int:
    deadline = time.monotonic() + 30
    while True:  # the first use creates and loads __transaction_state
        r = client.request(ApiKey.INIT_PRODUCER_ID, 5, InitProducerIdRequest(
            transactional_id=TID, transaction_timeout=datetime.timedelta(seconds=60),
            producer_id=-1, producer_epoch=-1))
        if r.error_code == ErrorCode.none:
            assert r.producer_epoch == 0
            return int(r.producer_id)
        assert r.error_code in (ErrorCode.coordinator_load_in_progress,
                                ErrorCode.coordinator_not_available, ErrorCode.not_coordinator)
        assert time.monotonic() < deadline, "the transaction coordinator never loaded"
        time.sleep(0.05)


class HeldMarkers:
    """Holds the coordinator's marker writing until `release`."""

    def __init__(self, broker: EmbeddedBroker) -> None:
        self.broker = broker
        coordinator = broker.services.transactions
        write_markers = coordinator._write_markers
        self.gate: asyncio.Event | None = None

        async def held(partition: int, metadata: Any) -> None:
            if self.gate is None:
                self.gate = asyncio.Event()
            await self.gate.wait()
            await write_markers(partition, metadata)

        coordinator._write_markers = held

    def release(self) -> None:
        async def release() -> None:
            if self.gate is None:
                self.gate = asyncio.Event()
            self.gate.set()
        self.broker.run(release())


def test_next_transaction_waits_for_the_previous_and_old_epoch_is_fenced(
        fresh_broker: EmbeddedBroker) -> None:
    with WireClient(fresh_broker.bootstrap) as client:
        client.request(ApiKey.METADATA, 12, metadata_request(TOPIC))
        pid = _init_producer_id(client)
        markers = HeldMarkers(fresh_broker)

        assert _produce(client, pid, 0, 0) == ErrorCode.none  # adds the partition (v12)
        assert _end_txn(client, pid, 0, True) == (ErrorCode.none, pid, 1)
        # The commit is decided but its markers are not written: the producer's
        # next transaction waits (retriable answers), whatever it asks.
        assert _end_txn(client, pid, 1, False)[0] == ErrorCode.concurrent_transactions
        assert _produce(client, pid, 1, 0) == ErrorCode.not_enough_replicas
        markers.release()
        _wait_state(client, "CompleteCommit")

        # Nothing was added: the abort ends an empty transaction and bumps the epoch.
        assert _end_txn(client, pid, 1, False) == (ErrorCode.none, pid, 2)
        _wait_state(client, "CompleteAbort")
        # A late batch of the ended epoch is fenced, as in Kafka (PRODUCER_FENCED
        # from the coordinator is INVALID_PRODUCER_EPOCH on produce).
        assert _produce(client, pid, 1, 0) == ErrorCode.invalid_producer_epoch
        assert _produce(client, pid, 0, 1) == ErrorCode.invalid_producer_epoch
        assert _produce(client, pid, 2, 0) == ErrorCode.none
        assert _end_txn(client, pid, 2, True) == (ErrorCode.none, pid, 3)


def test_next_epochs_first_batch_refused_its_successor_is_out_of_order(
        fresh_broker: EmbeddedBroker) -> None:
    """The marker of a transaction version 2 commit carries the bumped epoch,
    so the partition knows the producer's new epoch before any of its batches.
    The next transaction's first batch is refused while the commit completes
    (its markers held back here); a pipelined second batch verified after it
    must be OUT_OF_ORDER_SEQUENCE_NUMBER (the client resends it after the
    first), not taken as the epoch's start: it was, and the first batch's
    retry was then out of order for good (TestTxnEtl against a cluster)."""
    with WireClient(fresh_broker.bootstrap) as client:
        client.request(ApiKey.METADATA, 12, metadata_request(TOPIC))
        pid = _init_producer_id(client)
        markers = HeldMarkers(fresh_broker)

        assert _produce(client, pid, 0, 0) == ErrorCode.none
        assert _end_txn(client, pid, 0, True) == (ErrorCode.none, pid, 1)
        assert _produce(client, pid, 1, 0) == ErrorCode.not_enough_replicas
        markers.release()
        _wait_state(client, "CompleteCommit")

        assert _produce(client, pid, 1, 1) == ErrorCode.out_of_order_sequence_number
        assert _produce(client, pid, 1, 0) == ErrorCode.none
        assert _produce(client, pid, 1, 1) == ErrorCode.none
        assert _end_txn(client, pid, 1, True) == (ErrorCode.none, pid, 2)
