"""Client-supplied regular expressions cannot stall the broker (issue 13 follow-up,
found by the fuzzer): `(a*)*c` against 30 "a"s backtracks for hours in Python's
`re`. Kafka matches these patterns with RE2/J, in linear time; so does strom (RE2).

A broker in a subprocess: before the fix it would spin in the regex, and the
client's socket timeout and the test's timeout end the test instead of pytest.
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kio.schema.consumer_group_heartbeat.v1 import request as cgh
from kio.schema.create_topics.v7 import request as ct
from kio.schema.find_coordinator.v4 import request as fc
from kio.schema.init_producer_id.v4 import request as ip
from kio.schema.list_transactions.v2 import request as lt
from kio.static.primitive import i8, i16, i32, i32Timedelta, i64

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from tests.process import StromProcess
from tests.wire import WireClient

EVIL = "(a*)*c"
VICTIM = "a" * 30
# Answers that only mean "the coordinator is still loading": asked again.
NOT_YET = (ErrorCode.not_coordinator, ErrorCode.coordinator_load_in_progress,
           ErrorCode.coordinator_not_available)


@pytest.fixture(scope="module")
def strom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StromProcess]:
    base: Path = tmp_path_factory.mktemp("regex")
    process = StromProcess(base / "data", overrides={"group.initial.rebalance.delay.ms": "0"})
    process.start()
    try:
        yield process
    finally:
        process.kill()


def _until_ready(ask: Callable[[], Any]) -> Any:
    """`ask()` until its error code is not a coordinator-loading one (bounded)."""
    deadline = time.monotonic() + 20
    for _ in range(400):
        response = ask()
        if response.error_code not in NOT_YET or time.monotonic() > deadline:
            return response
        time.sleep(0.05)  # the coordinator loads in the background; ask again
    return response


def _find_coordinator(client: WireClient, key_type: int, key: str) -> None:
    """Coordinators start on first use: FindCoordinator starts this key's one."""
    def ask() -> Any:
        response = client.request(ApiKey.FIND_COORDINATOR, 4, fc.FindCoordinatorRequest(
            key_type=i8(key_type), coordinator_keys=(key,)))
        return response.coordinators[0]
    assert _until_ready(ask).error_code == ErrorCode.none


def _heartbeat(client: WireClient, regex: str) -> Any:
    """A new member's second heartbeat: a regex new to the group is resolved
    after the heartbeat that brought it, as Kafka resolves it asynchronously."""
    group_id = f"g-{uuid.uuid4()}"
    member_id = str(uuid.uuid4())
    _find_coordinator(client, 0, group_id)
    response: Any = None
    for _ in range(2):
        epoch = 0 if response is None else response.member_epoch
        response = client.request(
            ApiKey.CONSUMER_GROUP_HEARTBEAT, 1, cgh.ConsumerGroupHeartbeatRequest(
                group_id=group_id, member_id=member_id, member_epoch=i32(epoch),
                instance_id=None, rack_id=None,
                rebalance_timeout=i32Timedelta.parse(datetime.timedelta(seconds=30)),
                subscribed_topic_names=None, subscribed_topic_regex=regex,
                server_assignor=None, topic_partitions=()))
        if response.error_code != ErrorCode.none:
            break
    return response


@pytest.mark.timeout(60)
def test_consumer_group_regex_cannot_stall_the_broker(strom: StromProcess) -> None:
    with WireClient(strom.bootstrap, timeout=15) as client:
        created = client.request(ApiKey.CREATE_TOPICS, 7, ct.CreateTopicsRequest(
            topics=(ct.CreatableTopic(name=VICTIM, num_partitions=i32(1),
                                      replication_factor=i16(1), assignments=(), configs=()),),
            timeout=i32Timedelta.parse(datetime.timedelta(seconds=10)), validate_only=False))
        assert created.topics[0].error_code == ErrorCode.none
        response = _heartbeat(client, EVIL)
        assert response.error_code == ErrorCode.none, response
        assert response.assignment is not None
        assert response.assignment.topic_partitions == ()  # VICTIM does not end in "c"
        # Whole-name matching, as Kafka's Matcher.matches(): "a+" takes VICTIM, "a" does not.
        matching = _heartbeat(client, "a+")
        assert matching.error_code == ErrorCode.none
        assert [t.partitions for t in matching.assignment.topic_partitions] == [(0,)]
        partial = _heartbeat(client, "a")
        assert partial.error_code == ErrorCode.none
        assert partial.assignment.topic_partitions == ()
        invalid = _heartbeat(client, "(a)\\1")  # a backreference: invalid in RE2/J too
        assert invalid.error_code == ErrorCode.invalid_regular_expression


def _list(client: WireClient, pattern: str) -> Any:
    return client.request(ApiKey.LIST_TRANSACTIONS, 2, lt.ListTransactionsRequest(
        state_filters=(), producer_id_filters=(), duration_filter=i64(-1),
        transactional_id_pattern=pattern))


@pytest.mark.timeout(60)
def test_list_transactions_pattern_cannot_stall_the_broker(strom: StromProcess) -> None:
    with WireClient(strom.bootstrap, timeout=15) as client:
        _find_coordinator(client, 1, VICTIM)
        init = _until_ready(lambda: client.request(
            ApiKey.INIT_PRODUCER_ID, 4, ip.InitProducerIdRequest(
                transactional_id=VICTIM,
                transaction_timeout=i32Timedelta.parse(datetime.timedelta(seconds=60)),
                producer_id=i64(-1), producer_epoch=i16(-1))))
        assert init.error_code == ErrorCode.none
        response = _list(client, EVIL)
        assert response.error_code == ErrorCode.none
        assert response.transaction_states == ()
        assert [t.transactional_id for t in _list(client, "a+").transaction_states] == [VICTIM]
        assert _list(client, "a").transaction_states == ()
        assert _list(client, "(a)\\1").error_code == ErrorCode.invalid_regular_expression
