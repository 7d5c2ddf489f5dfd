"""The acks=all produce path under many small requests (docs/benchmarks.md,
the soak): wait_all's shared deadline timers, and per-partition append
settings resolved once per config change. No timed assertions."""

from __future__ import annotations

import asyncio

import pytest
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from strom.broker import deadlines as loop_deadlines
from strom.broker.deadlines import DeadlinePassed, wait_all
from strom.config import TopicConfig
from strom.protocol.records import TimestampType
from strom.testing import EmbeddedBroker
from tests.broker.admin_helpers import TIMEOUT, admin, create


def _run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_wait_all_returns_when_every_future_is_done() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = [loop.create_future() for _ in range(3)]
        waiting = loop.create_task(wait_all(futures, 3600))
        futures[0].set_result(None)
        futures[1].set_exception(RuntimeError("fsync failed"))
        await asyncio.sleep(0)
        assert not waiting.done()
        futures[2].set_result(None)
        await waiting
        assert futures[1].exception() is not None
        # Nothing of the wait stays registered on the loop's deadlines.
        deadlines = loop_deadlines.deadlines_of(loop)
        assert all(not bucket for bucket in deadlines._ticks.values())

    _run(main())


def test_wait_all_times_out_without_completing_the_futures() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        slow: asyncio.Future[None] = loop.create_future()
        slower: asyncio.Future[None] = loop.create_future()
        done: asyncio.Future[None] = loop.create_future()
        done.set_result(None)
        await wait_all([done, slow, slower], 0.001)
        assert not slow.done()  # the caller decides: produce answers REQUEST_TIMED_OUT
        assert not slower.done()
        slow.cancel()
        slower.cancel()

    _run(main())


def test_wait_all_on_one_future_fails_it_at_the_deadline() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        slow: asyncio.Future[None] = loop.create_future()
        await wait_all([slow], 0.001)
        # The caller's own future: failed with DeadlinePassed, never completed
        # as if it were durable; produce answers REQUEST_TIMED_OUT for it.
        assert isinstance(slow.exception(), DeadlinePassed)
        assert not loop_deadlines.deadlines_of(loop)._failing
        quick: asyncio.Future[None] = loop.create_future()
        loop.call_soon(quick.set_result, None)
        await wait_all([quick], 3600)
        assert quick.result() is None
        assert not loop_deadlines.deadlines_of(loop)._failing  # nothing left behind

    _run(main())


def test_wait_all_with_nothing_pending_returns_at_once() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        done.set_result(None)
        await wait_all([], 1)
        await wait_all([done], 1)
        assert not loop_deadlines.deadlines_of(loop)._ticks

    _run(main())


def test_waits_share_one_deadline_timer_per_tick() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = [loop.create_future() for _ in range(50)]
        # Far apart in time from the other tests' deadlines, close to each other.
        waits = [loop.create_task(wait_all([fut], 3600)) for fut in futures]
        await asyncio.sleep(0)
        ticks = loop_deadlines.deadlines_of(loop)._ticks
        assert sum(len(bucket) for bucket in ticks.values()) == 50
        assert len(ticks) < 50
        for fut in futures:
            fut.set_result(None)
        await asyncio.gather(*waits)
        assert all(not bucket for bucket in ticks.values())

    _run(main())


def test_each_loop_gets_its_own_deadlines() -> None:
    async def first() -> None:
        await wait_all([asyncio.get_running_loop().create_future()], 0.001)

    _run(first())
    _run(first())  # a timer of the closed loop must not be used


def test_append_settings_follow_topic_config_changes(broker: EmbeddedBroker,
                                                     topic_name: str) -> None:
    create(broker, topic_name)
    partition = broker.services.replicas.get(topic_name, 0)
    assert partition.append_settings.timestamp_type is TimestampType.CREATE_TIME
    assert not partition.append_settings.compacted
    resource = ConfigResource(ResourceType.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("max.message.bytes", "5000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("message.timestamp.type", "LogAppendTime",
                    incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET),
    ])
    admin(broker).incremental_alter_configs([resource])[resource].result(TIMEOUT)
    settings = broker.services.replicas.get(topic_name, 0).append_settings
    assert settings.max_message_bytes == 5000
    assert settings.timestamp_type is TimestampType.LOG_APPEND_TIME
    assert settings.compacted


@pytest.mark.parametrize("overrides", [{}, {"message.timestamp.after.max.ms": 7}])
def test_append_settings_match_the_topic_config(broker: EmbeddedBroker, topic_name: str,
                                                overrides: dict[str, int]) -> None:
    create(broker, topic_name)
    partition = broker.services.replicas.get(topic_name, 0)
    config = TopicConfig(overrides, partition.config.broker)
    partition.update_config(config)
    settings = partition.append_settings
    assert settings.timestamp_after_max_ms == config.int("message.timestamp.after.max.ms")
    assert settings.timestamp_before_max_ms == config.int("message.timestamp.before.max.ms")
    assert settings.max_message_bytes == config.int("max.message.bytes")
