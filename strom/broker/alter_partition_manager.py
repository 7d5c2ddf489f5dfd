"""ISR changes a leader proposes, sent to the controller (Kafka's
AlterPartitionManager): AlterPartition, one in flight per proposal, retried
while the controller cannot be reached and the proposal is still the
partition's pending change; and the periodic check that has leaders propose
to drop lagging followers (Kafka's isr-expiration task)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from strom.broker.partition import Partition
from strom.cluster.image import PartitionInfo
from strom.errors import (
    ErrorCode,
    KafkaError,
    NetworkError,
    NotControllerError,
    RequestTimedOutError,
)

if TYPE_CHECKING:
    from strom.broker.controller_channel import ControllerChannel

log = logging.getLogger(__name__)


class AlterPartitionManager:
    def __init__(self, controller: ControllerChannel, is_current: Callable[[Partition], bool],
                 apply: Callable[[Partition, PartitionInfo], None]) -> None:
        """`is_current`: the partition is still the one hosted under its name;
        `apply`: a committed change, applied before the image brings it."""
        self._controller = controller
        self._is_current = is_current
        self._apply = apply
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, partition: Partition, proposed: tuple[int, ...]) -> None:
        log.info("%s-%d: proposing ISR %s (was %s)", partition.topic, partition.index,
                 list(proposed), list(partition.isr))
        self._spawn(self._send(partition, proposed),
                    f"alter-partition-{partition.topic}-{partition.index}")

    def expire_lagging_followers(self, partitions: Callable[[], list[Partition]],
                                 max_lag_ms: int) -> None:
        """Kafka's isr-expiration task, until closed: every half lag time,
        leaders propose to drop the followers that have not caught up within it."""
        self._spawn(self._expire(partitions, max_lag_ms), "isr-expiration")

    async def _expire(self, partitions: Callable[[], list[Partition]], max_lag_ms: int) -> None:
        while True:
            await asyncio.sleep(max(max_lag_ms / 2, 10) / 1000)  # the check's period
            for partition in partitions():
                try:
                    partition.maybe_shrink_isr(max_lag_ms)
                except Exception:  # one partition must not stop the others' checks
                    log.exception("ISR check of %s-%d failed", partition.topic,
                                  partition.index)

    async def close(self) -> None:
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, partition: Partition, proposed: tuple[int, ...]) -> None:
        """AlterPartition for one proposal, retried while it is still the
        partition's pending change and the controller cannot be reached (Kafka's
        AlterPartitionManager). A refusal that names a newer state
        (FENCED_LEADER_EPOCH, INVALID_UPDATE_VERSION, UNKNOWN_TOPIC_ID, ...) keeps
        the proposal pending until the image brings that state, which resets it;
        INELIGIBLE_REPLICA and OPERATION_NOT_ATTEMPTED drop it, to be proposed
        again while it still holds."""
        backoff = 0.05
        for _ in range(1000):  # bounded: ~15 minutes of a controller out of reach
            key = (partition.topic, partition.index)
            if not self._is_current(partition) or not partition.is_leader \
                    or partition.pending_isr != proposed:
                return
            try:
                info = await self._controller.alter_partition(
                    partition.topic_id, partition.index, partition.leader_epoch,
                    partition.partition_epoch, proposed)
            except (NetworkError, RequestTimedOutError, NotControllerError) as exc:
                log.debug("AlterPartition of %s-%d: %s; retrying", key[0], key[1], exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            except KafkaError as exc:
                log.info("AlterPartition of %s-%d to ISR %s refused: %s (%s)", key[0], key[1],
                         list(proposed), exc.code.name, exc.message)
                if exc.code in (ErrorCode.ineligible_replica, ErrorCode.operation_not_attempted):
                    partition.isr_change_failed(proposed)
                return
            if self._is_current(partition):
                self._apply(partition, info)
            return
        partition.isr_change_failed(proposed)
