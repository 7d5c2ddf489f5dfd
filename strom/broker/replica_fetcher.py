"""Followers fetch from their leaders (Kafka's ReplicaFetcherThread and
ReplicaFetcherManager), in cluster mode only.

One task per (leader broker, fetcher id) fetches every partition this broker
follows from that leader, with the ordinary Fetch API (v12: replica id, the
last fetched epoch for KIP-595-style truncation, diverging epochs in the
answer), over its own connection: the leader holds a fetch up to
`replica.fetch.wait.max.ms` when it has nothing new, and a request to the
controller on the same connection would wait behind it. Partitions are spread
over `num.replica.fetchers` tasks per leader by hashing, as Kafka's.

Per partition the answer is applied in order:
- records: appended as they are (`Partition.append_as_follower`: their
  offsets and partition leader epochs are the leader's, so this log's leader
  epoch cache learns the epochs and can answer OffsetForLeaderEpoch if this
  broker leads later); the HW follows the leader's, bounded by this log's end,
  and the log start offset follows the leader's;
- a diverging epoch: the log is truncated where it stops agreeing with the
  leader's (below), and the next fetch names its new last epoch;
- OFFSET_OUT_OF_RANGE: ListOffsets to the leader (as a replica: the latest
  offset is its log end offset); a log longer than the leader's is truncated
  to its end, a log that ends before the leader's start starts over there;
- other partition errors (NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH,
  UNKNOWN_LEADER_EPOCH, ...): the partition pauses `replica.fetch.backoff.ms`;
  the metadata image re-points it when leadership moved.
A failed request (connection refused, reset, timeout) pauses every partition
of that fetcher for `replica.fetch.backoff.ms`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kio.schema.fetch.v12.request import FetchPartition, FetchRequest, FetchTopic
from kio.schema.fetch.v12.response import FetchResponse, PartitionData
from kio.schema.list_offsets.v7.request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from kio.schema.list_offsets.v7.response import ListOffsetsResponse
from kio.schema.types import BrokerId, TopicName
from kio.static.primitive import i8, i32, i32Timedelta, i64

from strom.broker.cancel import cancel_and_wait
from strom.broker.partition import Partition
from strom.broker.peer_client import PeerClient
from strom.broker.replication_quota import FOLLOWER_REPLICAS, ReplicationQuota, throttled
from strom.broker.replication_settings import ReplicationSettings
from strom.clock import Clock
from strom.cluster.image import BrokerInfo
from strom.errors import ErrorCode, KafkaError

log = logging.getLogger(__name__)

LATEST, EARLIEST = -1, -2


@dataclass(slots=True)
class _Fetching:
    partition: Partition
    leader_epoch: int
    #: monotonic seconds before which the partition is not fetched (backoff).
    paused_until: float = 0.0


Key = tuple[str, int]


class ReplicaFetcher:
    """Fetches the partitions it is given from one leader, until closed."""

    def __init__(self, node_id: int, leader_id: int, fetcher_id: int,
                 settings: ReplicationSettings, brokers: Callable[[], Mapping[int, BrokerInfo]],
                 clock: Clock, quota: ReplicationQuota | None = None) -> None:
        self.node_id = node_id
        #: follower.replication.throttled.rate (replication_quota.py).
        self._quota = quota
        self.leader_id = leader_id
        self.fetcher_id = fetcher_id
        self.settings = settings
        self._brokers = brokers
        self._clock = clock
        # Its own connection: fetches are held by the leader (see the module doc).
        self._peers = PeerClient(node_id, request_timeout=30.0 + settings.fetch_wait_max_ms / 1000,
                                 security=settings.security)
        self.partitions: dict[Key, _Fetching] = {}
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"replica-fetcher-{leader_id}-{fetcher_id}")
        self._warned = False

    def add(self, partition: Partition) -> None:
        key = (partition.topic, partition.index)
        self.partitions[key] = _Fetching(partition, partition.leader_epoch)
        self._changed.set()

    def remove(self, key: Key) -> None:
        self.partitions.pop(key, None)

    async def close(self) -> None:
        # One cancel() can be lost in PeerClient.send's wait_for (broker/cancel.py).
        await cancel_and_wait(self._task)
        await self._peers.close()

    async def _run(self) -> None:
        backoff = self.settings.fetch_backoff_ms / 1000
        while True:
            try:
                await self._fetch_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep following; the next round retries
                log.exception("replica fetcher for broker %d failed", self.leader_id)
                await asyncio.sleep(backoff)

    async def _fetch_once(self) -> None:
        now = self._clock.monotonic()
        ready = {key: f for key, f in self.partitions.items() if f.paused_until <= now}
        quota = self._quota
        throttled: set[Key] = set()
        if quota is not None and quota.limited and ready:
            throttled = {key for key, f in ready.items() if self._throttled(f.partition)}
            if throttled and quota.exceeded():
                # Kafka's shouldFollowerThrottle: left out until the bound allows.
                for key in throttled:
                    del ready[key]
                throttled = set()
                if not ready:
                    self._changed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(),
                                               min(max(quota.delay(), 0.01), 1.0))
                    return
        if not ready:
            self._changed.clear()
            timeout = (min(f.paused_until for f in self.partitions.values()) - now
                       if self.partitions else None)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
            return
        leader = self._brokers().get(self.leader_id)
        if leader is None:
            self._pause(ready.values())
            return
        sent = {key: (f, f.partition.log_end_offset) for key, f in ready.items()}
        try:
            response = await self._peers.request(leader, self._request(sent), FetchResponse)
        except KafkaError as exc:  # NetworkError, RequestTimedOutError
            if not self._warned:
                log.warning("cannot fetch from broker %d (%s:%d): %s; retrying every %d ms",
                            self.leader_id, leader.host, leader.port, exc.message,
                            self.settings.fetch_backoff_ms)
                self._warned = True
            self._pause(ready.values())
            return
        self._warned = False
        for topic in response.responses:
            for data in topic.partitions:
                key = (str(topic.topic), int(data.partition_index))
                entry = sent.get(key)
                if entry is None:
                    continue
                fetching, offset = entry
                partition = fetching.partition
                if self.partitions.get(key) is not fetching \
                        or partition.log_end_offset != offset or partition.is_leader:
                    continue  # re-pointed or changed while the fetch was out
                if key in throttled and quota is not None:
                    quota.record(len(data.records) if data.records else 0)
                try:
                    await self._apply(leader, fetching, offset, data)
                except KafkaError as exc:
                    log.warning("replicating %s-%d from broker %d: %s", key[0], key[1],
                                self.leader_id, exc.message)
                    self._pause([fetching])

    def _throttled(self, partition: Partition) -> bool:
        """Out of the ISR and listed in follower.replication.throttled.replicas."""
        return self.node_id not in partition.isr and throttled(
            partition.config, FOLLOWER_REPLICAS, partition.index, self.node_id)

    def _request(self, sent: Mapping[Key, tuple[_Fetching, int]]) -> FetchRequest:
        settings = self.settings
        topics: dict[str, list[FetchPartition]] = {}
        for (topic, index), (fetching, offset) in sent.items():
            partition = fetching.partition
            topics.setdefault(topic, []).append(FetchPartition(
                partition=i32(index), current_leader_epoch=i32(fetching.leader_epoch),
                fetch_offset=i64(offset), last_fetched_epoch=i32(partition.last_fetched_epoch),
                log_start_offset=i64(partition.log_start_offset),
                partition_max_bytes=i32(settings.fetch_max_bytes)))
        return FetchRequest(
            replica_id=BrokerId(self.node_id),
            max_wait=i32Timedelta.parse(datetime.timedelta(
                milliseconds=settings.fetch_wait_max_ms)),
            min_bytes=i32(settings.fetch_min_bytes),
            max_bytes=i32(settings.fetch_response_max_bytes),
            isolation_level=i8(0), forgotten_topics_data=(),
            topics=tuple(FetchTopic(topic=TopicName(name), partitions=tuple(parts))
                         for name, parts in topics.items()))

    async def _apply(self, leader: BrokerInfo, fetching: _Fetching, offset: int,
                     data: PartitionData) -> None:
        partition = fetching.partition
        code = data.error_code
        if code == ErrorCode.none:
            diverging = data.diverging_epoch
            if diverging.epoch >= 0:
                self._truncate_diverging(partition, int(diverging.epoch),
                                         int(diverging.end_offset))
                return
            records = data.records
            partition.append_as_follower(memoryview(records) if records else memoryview(b""),
                                         int(data.high_watermark), int(data.log_start_offset))
            return
        if code == ErrorCode.offset_out_of_range:
            await self._out_of_range(leader, fetching)
            return
        log.debug("fetch of %s-%d from broker %d: %s", partition.topic, partition.index,
                  self.leader_id, ErrorCode(code).name)
        self._pause([fetching])

    def _truncate_diverging(self, partition: Partition, epoch: int, end_offset: int) -> None:
        """The leader's log agrees with this one up to `end_offset` in `epoch`
        at most; truncate there (Kafka's getOffsetTruncationState)."""
        log_end = partition.log_end_offset
        local_epoch, local_end = partition.end_offset_for_epoch_local(epoch)
        if local_epoch < 0:
            target = min(end_offset, log_end)
        else:
            target = min(end_offset, local_end, log_end)
        log.info("truncating %s-%d to offset %d (leader broker %d: epoch %d ends at %d; "
                 "this log ended at %d)", partition.topic, partition.index, target,
                 self.leader_id, epoch, end_offset, log_end)
        partition.truncate_to(target)

    async def _out_of_range(self, leader: BrokerInfo, fetching: _Fetching) -> None:
        """Kafka's fetchOffsetAndTruncate: compare with the leader's ends."""
        partition = fetching.partition
        leader_end = await self._list_offset(leader, fetching, LATEST)
        log_end = partition.log_end_offset
        if leader_end < log_end:
            log.warning("truncating %s-%d to the leader's log end offset %d (was %d)",
                        partition.topic, partition.index, leader_end, log_end)
            partition.truncate_to(leader_end)
            return
        leader_start = await self._list_offset(leader, fetching, EARLIEST)
        if leader_start > log_end:
            log.info("%s-%d restarts at the leader's log start offset %d (this log ended "
                     "at %d)", partition.topic, partition.index, leader_start, log_end)
            partition.truncate_fully_and_start_at(leader_start)

    async def _list_offset(self, leader: BrokerInfo, fetching: _Fetching, timestamp: int) -> int:
        partition = fetching.partition
        request = ListOffsetsRequest(
            replica_id=BrokerId(self.node_id), isolation_level=i8(0),
            topics=(ListOffsetsTopic(name=TopicName(partition.topic), partitions=(
                ListOffsetsPartition(partition_index=i32(partition.index),
                                     current_leader_epoch=i32(fetching.leader_epoch),
                                     timestamp=i64(timestamp)),)),))
        response = await self._peers.request(leader, request, ListOffsetsResponse)
        answer = response.topics[0].partitions[0]
        if answer.error_code != ErrorCode.none:
            error = KafkaError(f"ListOffsets answered {ErrorCode(answer.error_code).name}")
            error.code = ErrorCode(answer.error_code)
            raise error
        return int(answer.offset)

    def _pause(self, fetchings: object) -> None:
        until = self._clock.monotonic() + self.settings.fetch_backoff_ms / 1000
        for fetching in fetchings:  # type: ignore[attr-defined]
            fetching.paused_until = until


class ReplicaFetcherManager:
    """Which fetcher follows which partition (Kafka's ReplicaFetcherManager)."""

    def __init__(self, node_id: int, settings: ReplicationSettings,
                 brokers: Callable[[], Mapping[int, BrokerInfo]], clock: Clock, *,
                 quota: ReplicationQuota | None = None) -> None:
        self.node_id = node_id
        self.settings = settings
        self._brokers = brokers
        self._clock = clock
        self._quota = quota
        self._fetchers: dict[tuple[int, int], ReplicaFetcher] = {}
        self._assigned: dict[Key, tuple[int, int]] = {}

    def follow(self, partition: Partition) -> None:
        """(Re)point `partition` at its current leader; stop fetching it if it
        leads here or has no leader."""
        key = (partition.topic, partition.index)
        self.unfollow(key)
        leader = partition.leader_id
        if partition.is_leader or leader < 0:
            return
        fetcher_key = (leader, self._fetcher_id(key))
        fetcher = self._fetchers.get(fetcher_key)
        if fetcher is None:
            fetcher = self._fetchers[fetcher_key] = ReplicaFetcher(
                self.node_id, leader, fetcher_key[1], self.settings, self._brokers,
                self._clock, self._quota)
        fetcher.add(partition)
        self._assigned[key] = fetcher_key

    def unfollow(self, key: Key) -> None:
        fetcher_key = self._assigned.pop(key, None)
        if fetcher_key is not None:
            fetcher = self._fetchers.get(fetcher_key)
            if fetcher is not None:
                fetcher.remove(key)

    def _fetcher_id(self, key: Key) -> int:
        # Kafka: Utils.abs(31 * topic.hashCode + partition) % numFetchers; a
        # stable hash here, so a partition keeps its fetcher across restarts.
        return (zlib.crc32(key[0].encode()) * 31 + key[1]) % self.settings.num_fetchers

    async def close(self) -> None:
        fetchers, self._fetchers = list(self._fetchers.values()), {}
        self._assigned.clear()
        for fetcher in fetchers:
            await fetcher.close()
