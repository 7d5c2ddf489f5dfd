"""Share groups (KIP-932) in the group coordinator, as the broker's handlers see them.

ShareGroupHeartbeat and ShareGroupDescribe go to the group's
`__consumer_offsets` partition like every group request; what this adds to
the shard's records-only operations is the I/O they trigger in the share
coordinator, through the `Persister` (coordinator/share/persister.py):

- when a heartbeat finds partitions of subscribed topics without share state,
  their state is initialized (start offset -1, state epoch = the group epoch)
  in the background, then recorded as initialized, which makes the next
  heartbeat assign them (Kafka 4.x's InitializeShareGroupState step);
- DeleteGroups of an empty share group deletes the state of every partition
  it initialized before the group's tombstones are written;
- `info` tells the share coordinator's admin APIs (Describe/Alter/Delete
  ShareGroupOffsets) whether a group exists, is empty, what it subscribes to
  and which partitions it initialized.

Without a Persister (no share coordinator in this broker) partitions need no
initialization and deletion deletes nothing but the group's records.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from strom.cluster.image import MetadataImage
from strom.coordinator.group.errors import UnsupportedVersionError
from strom.coordinator.group.requests import ShareHeartbeatRequest
from strom.coordinator.group.share_group import ShareGroup
from strom.coordinator.group.share_protocol import ShareHeartbeatOutcome, TopicInit
from strom.coordinator.share.persister import Persister
from strom.errors import ErrorCode, KafkaError

if TYPE_CHECKING:
    from strom.coordinator.group.service import GroupCoordinator
    from strom.coordinator.group.shard import GroupCoordinatorShard

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ShareGroupInfo:
    """What the share coordinator's admin APIs need to know of a share group."""

    group_id: str
    exists: bool
    is_share_group: bool  # False: the id is another type's (error GROUP_ID_NOT_FOUND)
    state: str  # "Empty", "Stable" or "Dead" when it does not exist
    is_empty: bool
    subscribed_topic_names: frozenset[str]
    #: (topic id, partition) whose share state this group initialized.
    initialized: frozenset[tuple[uuid.UUID, int]]
    group_epoch: int = 0


class ShareGroupService:
    def __init__(self, coordinator: GroupCoordinator) -> None:
        self._coordinator = coordinator
        self._persister: Persister | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def persister(self) -> Persister | None:
        return self._persister

    def set_persister(self, persister: Persister | None) -> None:
        """The share coordinator's Persister (S3's), once the broker has one."""
        self._persister = persister
        for partition in self._coordinator.runtime.partitions:
            try:
                self._coordinator.runtime.read(partition, self._mark)
            except KafkaError:
                continue

    def _mark(self, shard: GroupCoordinatorShard) -> None:
        shard.share.has_persister = self._persister is not None

    @property
    def enabled(self) -> bool:
        return "share" in self._coordinator.config.rebalance_protocols

    # -- ShareGroupHeartbeat ------------------------------------------------------------

    async def heartbeat(self, request: ShareHeartbeatRequest) -> dict[str, Any]:
        coordinator = self._coordinator
        try:
            if not self.enabled:
                raise UnsupportedVersionError("The share group protocol is disabled.")
            partition = coordinator.partition_for(request.group_id)

            def run(shard: GroupCoordinatorShard) -> Any:
                self._mark(shard)
                return shard.share.heartbeat(request)

            outcome: ShareHeartbeatOutcome = await coordinator.runtime.write(partition, run)
        except Exception as exc:
            from strom.coordinator.group.service import _coordinator_error

            code = _coordinator_error(exc)
            # A remapped error (a record too large, a moved partition) carries no message,
            # as in Kafka: the original one names broker internals.
            message = (exc.message if isinstance(exc, KafkaError) and exc.code == code
                       else None)
            return {"throttle_time": 0, "error_code": code, "error_message": message,
                    "member_id": None, "member_epoch": 0, "heartbeat_interval": 0,
                    "assignment": None}
        if outcome.initialize and self._persister is not None:
            self._spawn(self._initialize(request.group_id, outcome.group_epoch,
                                         outcome.initialize))
        return outcome.response

    def _spawn(self, coro: Any) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a test driving the coordinator directly)
            coro.close()
            return
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _initialize(self, group_id: str, epoch: int, topics: tuple[TopicInit, ...]
                          ) -> None:
        persister = self._persister
        assert persister is not None
        ok = True
        try:
            await asyncio.gather(*(
                persister.initialize_state(group_id, topic_id, p, epoch, -1)
                for topic_id, _, partitions in topics for p in sorted(partitions)))
        except Exception as exc:
            ok = False
            log.warning("share group %s: initializing share state failed: %s", group_id, exc)
        coordinator = self._coordinator
        try:
            await coordinator.runtime.write(
                coordinator.partition_for(group_id),
                lambda shard: shard.share.initialized(group_id, topics, ok))
        except Exception as exc:
            log.warning("share group %s: recording initialized state failed: %s", group_id,
                        exc)

    # -- deleted topics -------------------------------------------------------------------

    def on_image(self, old: MetadataImage, new: MetadataImage) -> None:
        """Topics deleted from the cluster lose their share state in every share group
        (Kafka's GroupCoordinatorService.onMetadataUpdate: DeleteShareGroupState)."""
        if old.topics is new.topics:
            return
        kept = {t.topic_id for t in new.topics.values()}
        gone = frozenset(t.topic_id for t in old.topics.values() if t.topic_id not in kept)
        if gone:
            self._spawn(self._delete_topics(gone))

    async def _delete_topics(self, topic_ids: frozenset[uuid.UUID]) -> None:
        runtime = self._coordinator.runtime
        for partition in runtime.partitions:
            try:
                pending = await runtime.write(
                    partition, lambda shard: shard.share.mark_deleting(topic_ids))
            except KafkaError:
                continue  # not ours any more, or loading: its next owner has the records
            for group_id, partitions in pending:
                try:
                    if self._persister is not None:
                        await asyncio.gather(*(self._persister.delete_state(group_id, t, p)
                                               for t, p in partitions))
                    await runtime.write(partition, lambda shard: shard.share.deleted(
                        group_id, topic_ids))  # noqa: B023
                except KafkaError as exc:
                    log.warning("share group %s: deleting the state of deleted topics "
                                "failed: %s", group_id, exc)

    # -- ShareGroupDescribe -------------------------------------------------------------

    async def describe(self, group_ids: list[str]) -> list[dict[str, Any]]:
        def failed(group_id: str, code: ErrorCode, message: str | None) -> dict[str, Any]:
            return {"error_code": code, "error_message": message, "group_id": group_id,
                    "group_state": "Dead", "group_epoch": -1, "assignment_epoch": -1,
                    "assignor_name": "", "members": []}

        return self._coordinator.describe_each(
            group_ids, lambda shard, group_id: shard.share.describe(group_id), failed)

    # -- for the share coordinator's admin APIs ------------------------------------------

    async def info(self, group_id: str) -> ShareGroupInfo:
        """Raises KafkaError (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, ...)."""
        coordinator = self._coordinator

        def read(shard: GroupCoordinatorShard) -> ShareGroupInfo:
            group = shard.groups.get(group_id)
            if not isinstance(group, ShareGroup):
                return ShareGroupInfo(group_id, group is not None, False,
                                      "Dead" if group is None else group.state_name,
                                      group is None or group.is_empty, frozenset(),
                                      frozenset())
            return ShareGroupInfo(
                group_id, True, True, group.state_name, group.is_empty,
                frozenset(group.subscribed_topic_names()),
                frozenset((t, p) for t, (_, ps) in group.initialized.items() for p in ps),
                group.group_epoch)

        return coordinator.runtime.read(coordinator.partition_for(group_id), read)

    async def delete_state(self, group_ids: list[str]) -> dict[str, ErrorCode]:
        """Delete the share state of the empty share groups among `group_ids` before
        DeleteGroups writes their tombstones; a group whose state could not be deleted
        gets its error (and is not deleted)."""
        errors: dict[str, ErrorCode] = {}
        persister = self._persister
        if persister is None:
            return errors
        for group_id in group_ids:
            try:
                info = await self.info(group_id)
            except KafkaError:
                continue  # DeleteGroups answers with the coordinator's error
            if not info.is_share_group or not info.is_empty:
                continue
            try:
                await asyncio.gather(*(persister.delete_state(group_id, t, p)
                                       for t, p in sorted(info.initialized, key=str)))
            except KafkaError as exc:
                log.warning("share group %s: deleting share state failed: %s", group_id, exc)
                errors[group_id] = exc.code
        return errors

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except BaseException:  # noqa: BLE001 - cancelled or failed; already logged
                pass
