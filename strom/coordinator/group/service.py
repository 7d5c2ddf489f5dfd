"""The group coordinator as the broker's handlers see it.

It owns the runtime over `__consumer_offsets` (created at start-up if
missing, compacted, `offsets.topic.num.partitions` partitions), follows the
metadata image to load the partitions this broker leads and unload the
others, routes each group to its partition with Kafka's own function
(`abs(groupId.hashCode()) % partitions`, Java's String.hashCode, so tools
agree with us on the coordinator), and turns requests into runtime
operations. Handlers stay thin: kio requests in, version-independent dicts
out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from strom.clock import Clock
from strom.cluster.image import GROUP_METADATA_TOPIC, MetadataImage
from strom.cluster.store import MetadataStore
from strom.config import BrokerConfig
from strom.coordinator.group.classic import Responder, join_response, sync_response
from strom.coordinator.group.consumer import ConsumerGroup
from strom.coordinator.group.context import GroupConfig
from strom.coordinator.group.errors import (
    InvalidGroupIdError,
    InvalidSessionTimeoutError,
    UnknownMemberIdError,
    UnsupportedVersionError,
)
from strom.coordinator.group.offsets import fetch_response_topics
from strom.coordinator.group.requests import (
    CommitRequest,
    HeartbeatRequest,
    JoinRequest,
    LeavingMember,
    SyncRequest,
)
from strom.coordinator.group.shard import GroupCoordinatorShard
from strom.coordinator.group.share_service import ShareGroupInfo, ShareGroupService
from strom.coordinator.group.streams import StreamsGroup
from strom.coordinator.group.streams_service import StreamsGroupService
from strom.coordinator.runtime import (
    CoordinatorRuntime,
    LeaderPartition,
    Result,
    Timer,
)
from strom.coordinator.state_topic import CreateTopic, coordinator_node, state_topic_replication
from strom.errors import ErrorCode, KafkaError, error_code_for

log = logging.getLogger(__name__)

TOPIC = GROUP_METADATA_TOPIC


def java_string_hash(text: str) -> int:
    """Java's String.hashCode: over UTF-16 code units, in 32-bit arithmetic."""
    data = text.encode("utf-16-be")
    h = 0
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h >= (1 << 31) else h


def partition_for(group_id: str, partitions: int) -> int:
    """Kafka's GroupCoordinator.partitionFor (Utils.abs maps MIN_VALUE to 0)."""
    h = java_string_hash(group_id)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


class Replicas(Protocol):
    """What the coordinator needs of the broker's replica manager."""

    def get(self, topic: str, index: int) -> LeaderPartition: ...


class GroupCoordinator:
    def __init__(self, config: BrokerConfig, clock: Clock, metadata: MetadataStore,
                 replicas: Replicas, *, node_id: int, create_topic: CreateTopic) -> None:
        self.broker_config = config
        self._create = create_topic
        self.config = GroupConfig.from_broker(config)
        self.clock = clock
        self.metadata = metadata
        self.replicas = replicas
        self.node_id = node_id
        load_buffer = config.get("offsets.load.buffer.size")
        commit_timeout = config.get("offsets.commit.timeout.ms")
        assert isinstance(load_buffer, int) and isinstance(commit_timeout, int)
        self.runtime: CoordinatorRuntime[GroupCoordinatorShard] = CoordinatorRuntime(
            TOPIC, self._new_shard, clock, load_buffer_bytes=load_buffer,
            write_timeout_s=commit_timeout / 1000.0)
        # Streams groups (KIP-1071): heartbeats and describe.
        self.streams = StreamsGroupService(self)
        # Share groups (KIP-932): heartbeats, describe, and their share state.
        self.share = ShareGroupService(self)

    def _new_shard(self, partition: int, timer: Timer) -> GroupCoordinatorShard:
        return GroupCoordinatorShard(partition, timer, self.config, self.clock,
                                     lambda: self.metadata.image)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Load the partitions of `__consumer_offsets` we lead. The topic itself is
        created on first use (FindCoordinator), as Kafka does: 50 partitions cost
        a broker that never sees a group most of its start-up time."""
        self.metadata.subscribe(self.on_image)
        self.on_image(None, self.metadata.image)

    async def _create_topic(self) -> None:
        brokers = len(self.metadata.image.brokers)
        replication = self.broker_config.get("offsets.topic.replication.factor")
        segment_bytes = self.broker_config.get("offsets.topic.segment.bytes")
        assert isinstance(replication, int) and isinstance(segment_bytes, int)
        await self._create(
            TOPIC, self.config.offsets_topic_partitions,
            state_topic_replication(TOPIC, replication, brokers,
                                    cluster=bool(self.broker_config.etcd_endpoints)),
            {"cleanup.policy": "compact", "compression.type": "producer",
             "segment.bytes": str(segment_bytes)})
        log.info("created %s with %d partitions", TOPIC, self.config.offsets_topic_partitions)

    def on_image(self, old: MetadataImage | None, new: MetadataImage) -> None:
        self.runtime.follow_topic(new, TOPIC, self.node_id,
                                  lambda partition: self.replicas.get(TOPIC, partition))
        if old is not None:
            self.share.on_image(old, new)  # deleted topics lose their share state

    async def stop(self) -> None:
        await self.share.close()
        await self.runtime.close()

    # -- routing ------------------------------------------------------------------------

    @property
    def num_partitions(self) -> int:
        topic = self.metadata.image.topics.get(TOPIC)
        return len(topic.partitions) if topic is not None else self.config.offsets_topic_partitions

    def partition_for(self, group_id: str) -> int:
        return partition_for(group_id, self.num_partitions)

    async def coordinator_for(self, group_id: str) -> int | None:
        """The node id of the group's coordinator, or None if it has none now.
        `__consumer_offsets` is created here when missing, as Kafka does on
        FindCoordinator; its partitions then load in the background."""
        return await coordinator_node(lambda: self.metadata.image, TOPIC, self._create_topic,
                                lambda count: partition_for(group_id, count))

    # -- classic groups ---------------------------------------------------------------------

    def _check_join(self, request: JoinRequest) -> None:
        if not request.group_id:
            raise InvalidGroupIdError("The group id must not be empty")
        if not (self.config.min_session_timeout_ms <= request.session_timeout_ms
                <= self.config.max_session_timeout_ms):
            raise InvalidSessionTimeoutError(
                f"session timeout {request.session_timeout_ms} ms is outside "
                f"[{self.config.min_session_timeout_ms}, {self.config.max_session_timeout_ms}]")

    async def join_group(self, request: JoinRequest) -> dict[str, Any]:
        try:
            self._check_join(request)
        except KafkaError as exc:
            return join_response(request.member_id, exc.code)
        future, respond = _parked()
        try:
            # Answered when the group answers, as Kafka's GroupCoordinatorService
            # returns the join's own future rather than its write's: a new group's
            # creation record does not hold the first member's MEMBER_ID_REQUIRED
            # until it is fsync'd. Answers that need their records durable (a
            # static member's new id, a classic member of a consumer group) are
            # given by the operation's on_durable, which also answers a member
            # still parked when the write fails.
            self.runtime.write_now(self.partition_for(request.group_id),
                                   lambda shard: shard.join_group(request, respond))
        except Exception as exc:
            respond(join_response(request.member_id, _coordinator_error(exc)))
        return await future

    async def sync_group(self, request: SyncRequest) -> dict[str, Any]:
        if not request.group_id:
            return sync_response(ErrorCode.invalid_group_id)
        future, respond = _parked()
        try:
            await self.runtime.write(self.partition_for(request.group_id),
                                     lambda shard: shard.sync_group(request, respond))
        except Exception as exc:
            respond(sync_response(_coordinator_error(exc)))
        return await future

    async def heartbeat(self, group_id: str, member_id: str, group_instance_id: str | None,
                        generation_id: int) -> ErrorCode:
        if not group_id:
            return ErrorCode.invalid_group_id
        try:
            return await self.runtime.write(
                self.partition_for(group_id),
                lambda shard: shard.heartbeat(group_id, member_id, group_instance_id,
                                              generation_id))
        except Exception as exc:
            code = _coordinator_error(exc)
            # While loading, Kafka answers heartbeats blindly: the member stays.
            return ErrorCode.none if code == ErrorCode.coordinator_load_in_progress else code

    async def leave_group(self, group_id: str, members: list[LeavingMember]) -> dict[str, Any]:
        if not group_id:
            return {"error_code": ErrorCode.invalid_group_id, "members": []}
        try:
            return await self.runtime.write(self.partition_for(group_id),
                                            lambda shard: shard.leave_group(group_id, members))
        except UnknownMemberIdError:
            return {"error_code": ErrorCode.none, "members": [
                {"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                 "error_code": ErrorCode.unknown_member_id} for m in members]}
        except Exception as exc:
            return {"error_code": _coordinator_error(exc), "members": []}

    # -- offsets ----------------------------------------------------------------------------

    async def commit_offsets(self, request: CommitRequest) -> list[dict[str, Any]]:
        """Per-topic responses; any group-level error is put on every partition."""
        try:
            if not request.group_id:
                raise InvalidGroupIdError("The group id must not be empty")
            return await self.runtime.write(self.partition_for(request.group_id),
                                            lambda shard: shard.offsets.commit(request))
        except Exception as exc:
            code = _commit_error(exc)
            return [{"name": topic, "partitions": [
                {"partition_index": p.partition, "error_code": code} for p in partitions]}
                for topic, partitions in request.topics]

    async def txn_commit_offsets(self, request: CommitRequest, producer_id: int,
                                 producer_epoch: int) -> list[dict[str, Any]]:
        """TxnOffsetCommit: the offsets are written as part of the producer's
        transaction and become committed when its COMMIT marker is written."""
        def commit(shard: GroupCoordinatorShard) -> Result[list[dict[str, Any]]]:
            result = shard.offsets.commit(request)
            result.producer_id, result.producer_epoch = producer_id, producer_epoch
            return result

        try:
            if not request.group_id:
                raise InvalidGroupIdError("The group id must not be empty")
            return await self.runtime.write(self.partition_for(request.group_id), commit)
        except Exception as exc:
            code = _commit_error(exc)
            return [{"name": topic, "partitions": [
                {"partition_index": p.partition, "error_code": code} for p in partitions]}
                for topic, partitions in request.topics]

    def on_transaction_marker(self, partition: int, producer_id: int, commit: bool) -> None:
        """The transaction coordinator wrote a marker to `__consumer_offsets-partition`."""
        try:
            self.runtime.read(partition,
                              lambda shard: shard.replay_end_transaction(producer_id, commit))
        except KafkaError as exc:
            log.warning("marker for producer %d on partition %d not applied: %s",
                        producer_id, partition, exc)

    async def fetch_offsets(self, group_id: str, topics: list[tuple[str, list[int]]] | None,
                            member_id: str | None = None, member_epoch: int = -1,
                            require_stable: bool = False) -> tuple[ErrorCode, list[Any]]:
        """(group error, per-topic offsets). Stable: no transactions write offsets yet."""
        try:
            def fetch(shard: GroupCoordinatorShard) -> list[Any]:
                group = shard.groups.get(group_id)
                if isinstance(group, (ConsumerGroup, StreamsGroup)):
                    group.validate_offset_fetch(member_id, member_epoch)
                elif group is not None:
                    group.validate_offset_fetch()
                if require_stable and shard.has_pending_txn_offsets(group_id):
                    raise UnstableOffsetCommitError(f"{group_id} has pending offsets")
                return fetch_response_topics(shard.offsets.fetch(group_id, topics))

            return ErrorCode.none, self.runtime.read(self.partition_for(group_id), fetch)
        except Exception as exc:
            return _coordinator_error(exc), []

    async def delete_offsets(self, group_id: str, topics: list[tuple[str, list[int]]]
                             ) -> tuple[ErrorCode, list[dict[str, Any]]]:
        try:
            return ErrorCode.none, await self.runtime.write(
                self.partition_for(group_id), lambda shard: shard.offsets.delete(group_id, topics))
        except Exception as exc:
            return _coordinator_error(exc), []

    # -- listing, describing, deleting ---------------------------------------------------

    async def list_groups(self, states: Iterable[str], types: Iterable[str]
                          ) -> tuple[ErrorCode, list[dict[str, Any]]]:
        states, types = list(states), list(types)
        listed: list[dict[str, Any]] = []
        for partition in self.runtime.partitions:
            try:
                listed.extend(self.runtime.read(
                    partition, lambda shard: shard.list_groups(states, types)))
            except KafkaError as exc:
                if exc.code != ErrorCode.not_coordinator:
                    return exc.code, []
        return ErrorCode.none, listed

    async def describe_groups(self, group_ids: list[str], include_operations: bool
                              ) -> list[tuple[str, ErrorCode, str | None, dict[str, Any] | None]]:
        """Per group: (id, error, error message, description or None if it has none)."""
        out: list[tuple[str, ErrorCode, str | None, dict[str, Any] | None]] = []
        for group_id in group_ids:
            try:
                described, consumer = self.runtime.read(
                    self.partition_for(group_id),
                    lambda shard: (shard.describe_group(group_id, include_operations),  # noqa: B023
                                   shard.is_modern_group(group_id)))  # noqa: B023
            except Exception as exc:
                out.append((group_id, _coordinator_error(exc), None, None))
                continue
            if described is None:
                message = (f"Group {group_id} is not a classic group." if consumer
                           else f"Group {group_id} not found.")
                out.append((group_id, ErrorCode.group_id_not_found, message, None))
            else:
                out.append((group_id, ErrorCode.none, None, described))
        return out

    async def share_group_info(self, group_id: str) -> ShareGroupInfo:
        """A share group as the share coordinator's admin APIs see it (KafkaError if
        this broker is not its coordinator)."""
        return await self.share.info(group_id)

    async def delete_groups(self, group_ids: list[str]) -> list[dict[str, Any]]:
        # An empty share group's state goes first (Kafka: DeleteShareGroupState, then
        # the group's tombstones); a group whose state stays is not deleted.
        failed = await self.share.delete_state(group_ids)
        group_ids_all, group_ids = group_ids, [g for g in group_ids if g not in failed]
        by_partition: dict[int, list[str]] = {}
        for group_id in group_ids:
            by_partition.setdefault(self.partition_for(group_id), []).append(group_id)

        async def delete(partition: int, ids: list[str]) -> list[dict[str, Any]]:
            try:
                return await self.runtime.write(partition,
                                                lambda shard: shard.delete_groups(ids))
            except Exception as exc:
                code = _coordinator_error(exc)
                return [{"group_id": g, "error_code": code} for g in ids]

        results = await asyncio.gather(*(delete(p, ids) for p, ids in by_partition.items()))
        by_id = {r["group_id"]: r for batch in results for r in batch}
        by_id.update({g: {"group_id": g, "error_code": code} for g, code in failed.items()})
        return [by_id[g] for g in group_ids_all]

    # -- consumer groups (KIP-848) ------------------------------------------------------------

    async def consumer_group_heartbeat(self, request: HeartbeatRequest) -> dict[str, Any]:
        try:
            if "consumer" not in self.config.rebalance_protocols:
                raise UnsupportedVersionError("the consumer group protocol is disabled")
            return await self.runtime.write(
                self.partition_for(request.group_id),
                lambda shard: shard.consumer.heartbeat(request))
        except Exception as exc:
            code = _coordinator_error(exc)
            message = exc.message if isinstance(exc, KafkaError) else None
            return {"throttle_time": 0, "error_code": code, "error_message": message,
                    "member_id": None, "member_epoch": 0, "heartbeat_interval": 0,
                    "assignment": None}

    async def consumer_group_describe(self, group_ids: list[str], include_operations: bool
                                      ) -> list[dict[str, Any]]:
        def failed(group_id: str, code: ErrorCode, _message: str | None) -> dict[str, Any]:
            return {"error_code": code, "error_message": None, "group_id": group_id,
                    "group_state": "", "group_epoch": -1, "assignment_epoch": -1,
                    "assignor_name": "", "members": []}

        return self.describe_each(
            group_ids, lambda shard, group_id: shard.consumer_group_describe(
                group_id, include_operations), failed)

    def describe_each(self, group_ids: list[str],
                      describe: Callable[[GroupCoordinatorShard, str], dict[str, Any]],
                      failed: Callable[[str, ErrorCode, str | None], dict[str, Any]]
                      ) -> list[dict[str, Any]]:
        """Each group described by its partition's shard (the *GroupDescribe APIs of
        the modern group types); a group whose partition cannot answer gets `failed`
        with the error a client expects and the error's message."""
        out = []
        for group_id in group_ids:
            try:
                out.append(self.runtime.read(
                    self.partition_for(group_id),
                    lambda shard: describe(shard, group_id)))  # noqa: B023
            except Exception as exc:
                out.append(failed(group_id, _coordinator_error(exc),
                                  exc.message if isinstance(exc, KafkaError) else None))
        return out


class UnstableOffsetCommitError(KafkaError):
    code = ErrorCode.unstable_offset_commit
    retriable = True


def _parked() -> tuple[asyncio.Future[dict[str, Any]], Responder]:
    """A future for a parked response, and the responder that completes it once."""
    future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def respond(response: dict[str, Any]) -> None:
        if not future.done():
            future.set_result(response)

    return future, respond


def _coordinator_error(exc: BaseException) -> ErrorCode:
    """Errors of the coordinator's partition as clients expect them (they retry
    COORDINATOR_NOT_AVAILABLE and NOT_COORDINATOR after a FindCoordinator)."""
    if not isinstance(exc, KafkaError):
        log.error("group coordinator operation failed", exc_info=exc)
        return ErrorCode.unknown_server_error
    code = error_code_for(exc)
    if code in (ErrorCode.unknown_topic_or_partition, ErrorCode.not_enough_replicas,
                ErrorCode.request_timed_out):
        return ErrorCode.coordinator_not_available
    if code in (ErrorCode.not_leader_or_follower, ErrorCode.kafka_storage_error):
        return ErrorCode.not_coordinator
    if code in (ErrorCode.message_too_large, ErrorCode.record_list_too_large):
        return ErrorCode.unknown_server_error
    return code


def _commit_error(exc: BaseException) -> ErrorCode:
    code = _coordinator_error(exc)
    if isinstance(exc, KafkaError) and exc.code in (ErrorCode.message_too_large,
                                                    ErrorCode.record_list_too_large):
        return ErrorCode.invalid_commit_offset_size
    return code


__all__ = ["GroupCoordinator", "TOPIC", "partition_for", "java_string_hash"]
