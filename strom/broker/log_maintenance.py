"""The broker's scheduled log duties (Kafka's LogManager scheduler tasks
kafka-log-retention and kafka-recovery-point-checkpoint, with ReplicaManager's
high watermark checkpoint): retention every log.retention.check.interval.ms,
checkpoints (recovery points, log start offsets, high watermarks, producer
state snapshots) every log.flush.offset.checkpoint.interval.ms, and the log
cleaner's task beside them, until cancelled.

It owns no partition: each round it reads the ones the replica manager hosts
(a read-only view of its `partitions`), on the event loop, as their owner.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from strom.broker.log_cleaner import LogCleanerService
from strom.broker.partition import Partition
from strom.clock import Clock
from strom.config import BrokerConfig
from strom.errors import KafkaStorageError
from strom.storage import disk
from strom.storage.manager import LogManager

log = logging.getLogger(__name__)


class LogMaintenance:
    """Retention, checkpoints and the log cleaner of the hosted partitions."""

    def __init__(self, config: BrokerConfig, log_manager: LogManager,
                 partitions: Mapping[tuple[str, int], Partition], cleaner: LogCleanerService,
                 clock: Clock) -> None:
        self.config = config
        self.log_manager = log_manager
        self.partitions = partitions
        self.cleaner = cleaner
        self.clock = clock

    def high_watermarks(self) -> dict[tuple[str, int], int]:
        return {key: p.high_watermark for key, p in self.partitions.items()}

    def checkpoint(self) -> None:
        self.snapshot_producer_state()
        self.log_manager.checkpoint(self.high_watermarks())

    def snapshot_producer_state(self) -> None:
        for partition in self.partitions.values():
            try:
                partition.producer_state.maybe_snapshot()
            except OSError as exc:
                # A full disk: the state is rebuilt from the log on the next
                # start, from the previous snapshot. Logged once (storage.disk).
                disk.storage_error(exc, partition.log.directory, "snapshot producer state in")

    def apply_retention(self) -> int:
        deleted = 0
        now = self.clock.wall_ms()
        for partition in self.partitions.values():
            if "delete" not in partition.config.cleanup_policy:
                continue
            deleted += partition.log.apply_retention(
                now, high_watermark=partition.high_watermark)
            partition.after_log_change()
        return deleted

    async def run(self) -> None:
        """Retention, checkpoints and log compaction, until cancelled."""
        cleaner = asyncio.create_task(self.cleaner.run(), name="log-cleaner")
        try:
            await self._run_retention_and_checkpoints()
        finally:
            cleaner.cancel()
            await asyncio.gather(cleaner, return_exceptions=True)

    async def _run_retention_and_checkpoints(self) -> None:
        """Retention and checkpoints on Kafka's intervals, until cancelled."""
        retention_every = self._interval("log.retention.check.interval.ms")
        checkpoint_every = self._interval("log.flush.offset.checkpoint.interval.ms")
        next_retention = self.clock.monotonic() + retention_every
        next_checkpoint = self.clock.monotonic() + checkpoint_every
        while True:
            now = self.clock.monotonic()
            await asyncio.sleep(max(0.05, min(next_retention, next_checkpoint) - now))
            now = self.clock.monotonic()
            try:
                if now >= next_retention:
                    next_retention = now + retention_every
                    if self.apply_retention():
                        self.checkpoint()
                if now >= next_checkpoint:
                    next_checkpoint = now + checkpoint_every
                    self.checkpoint()
            except KafkaStorageError as exc:  # logged once per condition (storage.disk)
                log.debug("background log task failed: %s", exc)
            except Exception:  # keep the broker serving; the next round retries
                log.exception("background log task failed")

    def _interval(self, name: str) -> float:
        value = self.config.get(name)
        assert isinstance(value, int)
        return max(value, 100) / 1000.0

    def shutdown(self) -> None:
        """Last checkpoints, then every log closed, flushed (a clean shutdown)."""
        self.snapshot_producer_state()
        self.log_manager.shutdown(self.high_watermarks())
