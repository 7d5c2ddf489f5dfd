"""LeaderElector (cluster/leader_elector.py) driven by hand: which image
changes queue an election on the controller, that one waits at a time, that
a full batch queues the next and a failed one is retried, and nothing happens
on a broker that is not the controller. The queue is a list the test runs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from strom.cluster.elections import MAX_ELECTIONS_PER_BATCH, ControllerSettings
from strom.cluster.image import (
    BrokerInfo,
    MetadataImage,
    MetadataRecord,
    PartitionRecord,
    TopicConfigRecord,
    TopicRecord,
)
from strom.cluster.leader_elector import LeaderElector
from strom.errors import RequestTimedOutError

TOPIC = uuid.uuid4()


class Harness:
    def __init__(self, image: MetadataImage, controller: bool = True) -> None:
        self.image = image
        self.controller = controller
        self.queue: list[tuple[object, asyncio.Future[MetadataImage]]] = []
        self.elector = LeaderElector(self.enqueue, lambda: self.controller,
                                     lambda: self.image, ControllerSettings(), 1)

    def enqueue(self, operation: object) -> asyncio.Future[MetadataImage]:
        future: asyncio.Future[MetadataImage] = asyncio.get_running_loop().create_future()
        self.queue.append((operation, future))
        return future

    def change(self, new: MetadataImage) -> None:
        old, self.image = self.image, new
        self.elector.on_image(old, new)

    async def run_one(self, fail: bool = False) -> Sequence[MetadataRecord]:
        operation, future = self.queue.pop(0)
        records: Sequence[MetadataRecord] = operation()  # type: ignore[operator]
        if fail:
            future.set_exception(RequestTimedOutError("etcd down"))
        else:
            self.image = self.image.apply(records)
            future.set_result(self.image)
        await asyncio.sleep(0)  # done callbacks run
        return records


def _image(brokers: Sequence[int], partitions: int = 1) -> MetadataImage:
    image = MetadataImage("c", 1, {b: BrokerInfo(b, "h", b, None, b) for b in brokers})
    return image.apply([TopicRecord("t", TOPIC)] + [
        PartitionRecord(TOPIC, p, (1, 2), (1, 2), 1, 0, 0) for p in range(partitions)])


def test_triggers_and_one_election_at_a_time() -> None:
    async def main() -> None:
        h = Harness(_image([1, 2]))
        h.change(h.image.apply([]))  # became controller: the whole image is checked
        assert len(h.queue) == 1 and await h.run_one() == []
        h.change(h.image.apply([]))  # nothing relevant changed
        assert h.queue == []
        # Broker 1 leaves; then broker 2 is fenced: one election covers both.
        gone = MetadataImage("c", 1, {2: h.image.brokers[2]}, h.image.topics)
        h.change(gone)
        h.change(MetadataImage("c", 1, {2: BrokerInfo(2, "h", 2, None, 2, True)},
                               gone.topics))
        assert len(h.queue) == 1
        (record,) = await h.run_one()
        assert isinstance(record, PartitionRecord) and record.leader == -1
        # The unclean setting of a topic changed.
        h.change(h.image.apply([TopicConfigRecord(TOPIC, "unclean.leader.election.enable",
                                                  "true")]))
        assert len(h.queue) == 1
        await h.run_one()
    asyncio.run(main())


def test_full_batches_continue_and_failures_retry() -> None:
    async def main() -> None:
        partitions = MAX_ELECTIONS_PER_BATCH + 5
        h = Harness(_image([1, 2], partitions))
        h.change(h.image.apply([]))
        await h.run_one()
        h.change(MetadataImage("c", 1, {2: h.image.brokers[2]}, h.image.topics))
        assert len(await h.run_one()) == MAX_ELECTIONS_PER_BATCH
        assert len(h.queue) == 1  # the rest, queued at once
        await h.run_one(fail=True)
        assert h.queue == []
        await asyncio.wait_for(_until(lambda: bool(h.queue)), 5)  # retried after a pause
        assert len(await h.run_one()) == 5
        assert all(p.leader == 2 for p in h.image.topics["t"].partitions)
    asyncio.run(main())


def test_not_the_controller_elects_nothing() -> None:
    async def main() -> None:
        h = Harness(_image([1, 2]), controller=False)
        h.change(MetadataImage("c", 1, {2: h.image.brokers[2]}, h.image.topics))
        assert h.queue == []
    asyncio.run(main())


async def _until(condition: object) -> None:
    while not condition():  # type: ignore[operator]
        await asyncio.sleep(0.01)  # polled by a test; bounded by its wait_for
