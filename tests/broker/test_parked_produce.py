"""acks=all produce requests that wait for their flush are parked, not run in
a task (strom/broker/parked.py): answered in request order on their
connection, REQUEST_TIMED_OUT at their timeout, and harmless when the client
goes away meanwhile. A real broker over raw sockets; a slow disk is the
storage layer's test hook (strom.storage.flush.FSYNC_STALLS) holding the
partition's fdatasync until the test lets it go."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from strom.broker.parked import Parked
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.protocol.records import RecordSpec, build_batch
from strom.storage import files, flush
from strom.testing import EmbeddedBroker
from tests.broker.raw_client import RawClient, send

DEADLINE_S = 20.0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    embedded = EmbeddedBroker(tmp_path / "data").start()
    try:
        yield embedded
    finally:
        for stall in flush.FSYNC_STALLS.values():
            stall.set()
        flush.FSYNC_STALLS.clear()
        embedded.stop()


def _produce_body(partition: int, value: bytes, acks: int = -1,
                  timeout_ms: int = 10_000) -> dict[str, object]:
    batch = bytes(build_batch([RecordSpec(key=None, value=value,
                                          timestamp=int(time.time() * 1000))]))
    return {"acks": acks, "timeout": timeout_ms, "transactional_id": None,
            "topic_data": [{"name": "t", "partition_data": [
                {"index": partition, "records": batch}]}]}


def _result(response: object) -> tuple[int, int]:
    partition = response.responses[0].partition_responses[0]  # type: ignore[attr-defined]
    return int(partition.error_code), int(partition.base_offset)


def _stalled(broker: EmbeddedBroker, tmp_path: Path) -> threading.Event:
    """Create topic t (one partition, written once so its directory exists)
    and hold every later fdatasync of its partition until the event is set."""
    created = send(broker.bootstrap, ApiKey.CREATE_TOPICS, 5, {
        "topics": [{"name": "t", "num_partitions": 1, "replication_factor": 1,
                    "assignments": [], "configs": []}],
        "timeout_ms": 10000, "validate_only": False})
    assert created.topics[0].error_code == ErrorCode.none
    code, _ = _result(send(broker.bootstrap, ApiKey.PRODUCE, 9, _produce_body(0, b"first")))
    assert code == ErrorCode.none
    stall = threading.Event()
    directory = tmp_path / "data" / files.partition_dir_name("t", 0)
    assert directory.is_dir()
    flush.FSYNC_STALLS[directory] = stall
    return stall


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _in_flight(broker: EmbeddedBroker) -> list[int]:
    guard = broker._broker.connection_guard
    return [conn.in_flight for conn in guard.connections()]


def test_a_parked_produce_is_answered_before_the_requests_after_it(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    stall = _stalled(broker, tmp_path)
    with RawClient(broker.bootstrap) as client:
        produce_id = client.send_only(ApiKey.PRODUCE, 9, _produce_body(0, b"waits"))
        versions_id = client.send_only(ApiKey.API_VERSIONS, 3, {
            "client_software_name": "test", "client_software_version": "1"})
        # Both started: the produce waits for its fsync, ApiVersions is done and
        # must not overtake it.
        _wait_for(lambda: 2 in _in_flight(broker), "both requests in flight")
        stall.set()
        code, offset = _result(client.receive(ApiKey.PRODUCE, 9, produce_id))
        assert (code, offset) == (ErrorCode.none, 1)
        versions = client.receive(ApiKey.API_VERSIONS, 3, versions_id)
        assert versions.error_code == ErrorCode.none


def test_a_parked_produce_times_out_with_request_timed_out(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    stall = _stalled(broker, tmp_path)
    with RawClient(broker.bootstrap) as client:
        code, _ = _result(client.send(ApiKey.PRODUCE, 9,
                                      _produce_body(0, b"late", timeout_ms=200)))
        assert code == ErrorCode.request_timed_out
        # The connection goes on: the next request is answered once the disk is.
        stall.set()
        code, offset = _result(client.send(ApiKey.PRODUCE, 9, _produce_body(0, b"next")))
        assert (code, offset) == (ErrorCode.none, 2)
    assert [r.value for r in broker.records("t", 0)] == [b"first", b"late", b"next"]


def test_a_client_gone_while_its_produce_is_parked_leaves_the_broker_serving(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    stall = _stalled(broker, tmp_path)
    client = RawClient(broker.bootstrap)
    client.send_only(ApiKey.PRODUCE, 9, _produce_body(0, b"orphan"))
    _wait_for(lambda: 1 in _in_flight(broker), "the produce in flight")
    client.close()
    _wait_for(lambda: not _in_flight(broker), "the connection closed")
    stall.set()
    code, offset = _result(send(broker.bootstrap, ApiKey.PRODUCE, 9, _produce_body(0, b"after")))
    assert (code, offset) == (ErrorCode.none, 2)
    assert [r.value for r in broker.records("t", 0)] == [b"first", b"orphan", b"after"]


def test_acks_1_requests_are_not_held_behind_another_connections_parked_produce(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    stall = _stalled(broker, tmp_path)
    with RawClient(broker.bootstrap) as waiting:
        produce_id = waiting.send_only(ApiKey.PRODUCE, 9, _produce_body(0, b"waits"))
        code, offset = _result(send(broker.bootstrap, ApiKey.PRODUCE, 9,
                                    _produce_body(0, b"acks1", acks=1)))
        assert (code, offset) == (ErrorCode.none, 2)
        stall.set()
        assert _result(waiting.receive(ApiKey.PRODUCE, 9, produce_id)) == (ErrorCode.none, 1)


# --- Parked itself --------------------------------------------------------------------


def _run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_parked_notifies_once_the_last_future_is_done() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        seen: list[str] = []
        parked = Parked([first, second], 3600, lambda: "response")
        notified = loop.create_future()
        parked.notify(lambda p: notified.set_result(p.finish()))
        first.set_result(None)
        await asyncio.sleep(0)
        assert not notified.done()
        second.set_result(None)
        assert await notified == "response"
        seen.append("done")
        assert seen == ["done"]

    _run(main())


def test_parked_notifies_at_its_deadline_with_the_futures_not_done() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        slow = loop.create_future()

        def finish() -> bool:
            return slow.done()

        parked = Parked([slow], 0.001, finish)
        notified = loop.create_future()
        parked.notify(lambda p: notified.set_result(p.finish()))
        assert await notified is False  # finish saw the future not done
        slow.set_result(None)  # later: nothing is notified twice
        await asyncio.sleep(0)

    _run(main())


def test_awaiting_a_parked_gives_what_finish_builds() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        loop.call_soon(fut.set_result, None)
        assert await Parked([fut], 3600, lambda: {"responses": []}) == {"responses": []}

    _run(main())
