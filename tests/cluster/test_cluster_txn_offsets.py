"""Transaction version 2 offsets across brokers (real etcd, two real `strom
serve` processes, raw requests as franz-go sends them): TxnOffsetCommit v5
adds the group's `__consumer_offsets` partition to the transaction itself (the
client sends no AddOffsetsToTxn). When the group's coordinator and the
transaction's coordinator are different brokers, the group coordinator must
ask the other one (AddPartitionsToTxn v5). It asked itself and answered
NOT_COORDINATOR: franz-go retried until it gave up and aborted, so its
transactional consumers whose two coordinators differed never committed
(TestTxnEtl against a cluster timed out). Every wait has a deadline."""

from __future__ import annotations

import datetime
import time
from typing import Any

from kio.schema.end_txn.v5.request import EndTxnRequest
from kio.schema.find_coordinator.v4.request import FindCoordinatorRequest
from kio.schema.init_producer_id.v5.request import InitProducerIdRequest
from kio.schema.offset_fetch.v8 import request as of
from kio.schema.txn_offset_commit.v5 import request as tc

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from tests.cluster.brokers import WAIT
from tests.process import StromProcess
from tests.wire import WireClient

_RETRIABLE = (ErrorCode.coordinator_not_available, ErrorCode.coordinator_load_in_progress,
              ErrorCode.not_coordinator)


def _retry(call: Any, what: str) -> Any:
    """`call()` until its answer's error is not a coordinator still starting."""
    deadline = time.monotonic() + WAIT
    while True:
        response = call()
        if int(response.error_code) not in _RETRIABLE:
            return response
        assert time.monotonic() < deadline, f"{what}: {ErrorCode(response.error_code).name}"
        time.sleep(0.1)


def _coordinator(client: WireClient, key_type: int, key: str) -> tuple[int, str]:
    found = _retry(lambda: client.request(ApiKey.FIND_COORDINATOR, 4, FindCoordinatorRequest(
        key_type=key_type, coordinator_keys=(key,))).coordinators[0], f"coordinator of {key}")
    assert found.error_code == ErrorCode.none
    return int(found.node_id), f"{found.host}:{found.port}"


def test_offsets_of_a_transaction_whose_coordinator_is_the_other_broker(
        two_brokers: list[StromProcess]) -> None:
    with WireClient(two_brokers[0].bootstrap) as client:
        # A transactional id and a group whose coordinators are different brokers.
        txn_id = "txn-offsets"
        txn_node, txn_address = _coordinator(client, 1, txn_id)
        for i in range(200):
            group = f"group-{i}"
            group_node, group_address = _coordinator(client, 0, group)
            if group_node != txn_node:
                break
        assert group_node != txn_node, "every group had the transaction's coordinator"

    with WireClient(txn_address) as txn, WireClient(group_address) as groups:
        init = _retry(lambda: txn.request(ApiKey.INIT_PRODUCER_ID, 5, InitProducerIdRequest(
            transactional_id=txn_id, transaction_timeout=datetime.timedelta(seconds=60),
            producer_id=-1, producer_epoch=-1)), "InitProducerId")
        assert init.error_code == ErrorCode.none
        pid, epoch = int(init.producer_id), int(init.producer_epoch)

        committed = groups.request(ApiKey.TXN_OFFSET_COMMIT, 5, tc.TxnOffsetCommitRequest(
            transactional_id=txn_id, group_id=group, producer_id=pid, producer_epoch=epoch,
            topics=(tc.TxnOffsetCommitRequestTopic(name="input", partitions=(
                tc.TxnOffsetCommitRequestPartition(partition_index=0, committed_offset=42,
                                                   committed_metadata=None),)),)))
        code = committed.topics[0].partitions[0].error_code
        assert code == ErrorCode.none, ErrorCode(code).name

        ended = txn.request(ApiKey.END_TXN, 5, EndTxnRequest(
            transactional_id=txn_id, producer_id=pid, producer_epoch=epoch, committed=True))
        assert ended.error_code == ErrorCode.none

        # The commit marker reaches the group's partition: the offset is stable.
        deadline = time.monotonic() + WAIT
        while True:
            fetched = groups.request(ApiKey.OFFSET_FETCH, 8, of.OffsetFetchRequest(
                groups=(of.OffsetFetchRequestGroup(group_id=group, topics=(
                    of.OffsetFetchRequestTopics(name="input", partition_indexes=(0,)),)),),
                require_stable=True)).groups[0]
            # Pending, the answer is UNSTABLE_OFFSET_COMMIT (for the group or the partition).
            assert fetched.error_code in (ErrorCode.none, ErrorCode.unstable_offset_commit)
            if fetched.error_code == ErrorCode.none:
                partition = fetched.topics[0].partitions[0]
                if partition.error_code == ErrorCode.none and partition.committed_offset == 42:
                    break
                assert partition.error_code == ErrorCode.unstable_offset_commit, partition
            assert time.monotonic() < deadline, "the committed offset never became stable"
            time.sleep(0.05)
