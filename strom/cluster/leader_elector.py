"""The controller's elections, driven: when to run cluster/elections.py.

The etcd store calls `on_image` after every change of its image. On the
controller, an election is queued (as an ordinary metadata operation, in turn
with the others, validated against the newest image) when:

- the registered brokers changed: one left (lease expired, deregistered), one
  registered (it may lead leaderless partitions whose ISR names it), one was
  fenced (controlled shutdown);
- this broker became the controller: its predecessor may have died with
  elections undone, so the whole image is checked;
- `unclean.leader.election.enable` changed for a topic or the cluster.

At most one election waits in the queue at a time: triggers meanwhile are
covered by it, since it reads the image when it runs. An election that wrote
a full batch (elections.MAX_ELECTIONS_PER_BATCH) queues the next one; one
that failed (etcd unreachable) is retried after a pause while this broker is
still the controller. With `auto.leader.rebalance.enable`, preferred leaders
are restored every `leader.imbalance.check.interval.seconds`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from strom.cluster.elections import (
    MAX_ELECTIONS_PER_BATCH,
    UNCLEAN,
    ControllerSettings,
    election_records,
    preferred_records,
)
from strom.cluster.image import MetadataImage, MetadataRecord

log = logging.getLogger(__name__)

Operation = Callable[[], Sequence[MetadataRecord]]
#: Pause before an election that failed (etcd unreachable) runs again.
RETRY_DELAY = 0.5


class LeaderElector:
    def __init__(self, enqueue: Callable[[Operation], asyncio.Future[MetadataImage]],
                 is_controller: Callable[[], bool], image: Callable[[], MetadataImage],
                 settings: ControllerSettings, node_id: int) -> None:
        self._enqueue = enqueue
        self._is_controller = is_controller
        self._image = image
        self.settings = settings
        self.node_id = node_id
        self._queued = False
        self._was_controller = False
        #: Elections run, for tests and logs.
        self.elections = 0

    def on_image(self, old: MetadataImage, new: MetadataImage) -> None:
        controller = self._is_controller()
        became = controller and not self._was_controller
        self._was_controller = controller
        if controller and (became or old.brokers != new.brokers or _unclean_changed(old, new)):
            self.schedule()

    def schedule(self) -> None:
        if self._queued:
            return
        self._queued = True
        full: list[bool] = []
        ran: list[bool] = []

        def elect() -> list[MetadataRecord]:
            # Triggers from here on need an election after this one.
            self._queued = False
            ran.append(True)
            self.elections += 1
            records = election_records(self._image(), self.settings.unclean_leader_election_enable)
            full[:] = [len(records) >= MAX_ELECTIONS_PER_BATCH]
            if records:
                log.info("broker %d (controller): elections change %d partition(s)",
                         self.node_id, len(records))
            return list(records)

        def done(future: asyncio.Future[MetadataImage]) -> None:
            if not ran:  # refused before it ran (not the controller, stopping)
                self._queued = False
            if future.cancelled():
                return
            error = future.exception()
            if error is not None:
                if self._is_controller():
                    log.warning("broker %d (controller): elections failed (%s); retrying",
                                self.node_id, error)
                    asyncio.get_running_loop().call_later(RETRY_DELAY, self._retry)
            elif full and full[0]:
                self.schedule()

        self._enqueue(elect).add_done_callback(done)

    def _retry(self) -> None:
        if self._is_controller():
            self.schedule()

    async def rebalance(self) -> None:
        """auto.leader.rebalance.enable: every check interval, on the
        controller, move leadership back to preferred replicas. Cancel to stop."""
        if not self.settings.auto_leader_rebalance_enable:
            return
        while True:
            # A timer: Kafka's leader.imbalance.check.interval.seconds.
            await asyncio.sleep(self.settings.leader_imbalance_check_interval_seconds)
            if not self._is_controller():
                continue
            try:
                await self._enqueue(lambda: preferred_records(self._image()))
            except Exception as exc:  # the next interval tries again
                log.warning("broker %d (controller): preferred leader election failed: %s",
                            self.node_id, exc)


def _unclean_changed(old: MetadataImage, new: MetadataImage) -> bool:
    if old.broker_configs.get(UNCLEAN) != new.broker_configs.get(UNCLEAN):
        return True
    if old.topics is new.topics:
        return False
    for name, topic in new.topics.items():
        before = old.topics.get(name)
        if before is not None and before.configs is not topic.configs \
                and before.configs.get(UNCLEAN) != topic.configs.get(UNCLEAN):
            return True
    return False
