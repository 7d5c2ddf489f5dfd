"""EtcdMetadataStore against real etcd processes: brokers see each other's
commits in order, only the elected controller writes (a deposed one gets
NOT_CONTROLLER), a broker's lease expiry removes it, the watch resumes after
an etcd restart or reloads after compaction, and a three-member etcd keeps
serving with a member killed. Every wait has a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import pytest

from strom.cluster.etcd_client import EtcdClient
from strom.cluster.etcd_session import DuplicateBrokerRegistrationError
from strom.cluster.etcd_store import EtcdMetadataStore, write_batch
from strom.cluster.image import MetadataImage, MetadataRecord
from strom.errors import NotControllerError, TopicAlreadyExistsError
from tests.cluster.etcd_process import EtcdCluster

WAIT = 15.0  # seconds; every wait below is bounded by it
TTL = 2  # lease time to live, seconds

T = TypeVar("T")


def run(test: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(test(), 50)
    return asyncio.run(bounded())


@asynccontextmanager
async def broker(etcd: EtcdCluster, node_id: int, cluster: str = "c1",
                 **kwargs: object) -> AsyncIterator[EtcdMetadataStore]:
    store = EtcdMetadataStore(EtcdClient(etcd.endpoints, request_timeout=2.0), cluster=cluster,
                              node_id=node_id, listener=("127.0.0.1", 9000 + node_id),
                              lease_ttl=TTL, **kwargs)  # type: ignore[arg-type]
    await store.start()
    try:
        yield store
    finally:
        await store.stop()


async def create_topic(store: EtcdMetadataStore, name: str) -> MetadataImage:
    return await store.submit(lambda: store.operations.create_topic_records(name, 1, 1, {}))


def test_brokers_see_each_others_commits_in_order(etcd: EtcdCluster) -> None:
    async def main() -> None:
        async with broker(etcd, 1) as a, broker(etcd, 2) as b:
            seen: list[tuple[str, ...]] = []
            b.subscribe(lambda old, new: seen.append(tuple(new.topics)))
            await b.wait_for(lambda i: set(i.brokers) == {1, 2}, WAIT)
            assert a.image.controller_id == b.image.controller_id == 1
            assert a.is_controller and not b.is_controller
            names = [f"t{i}" for i in range(5)]
            for name in names:
                image = await create_topic(a, name)
                assert name in image.topics  # the commit returns the applied image
            final = await b.wait_for(lambda i: len(i.topics) == 5, WAIT)
            assert [t.topic_id for t in final.topics.values()] == [
                t.topic_id for t in a.image.topics.values()]
            # One topic at a time, in commit order.
            grown = [s for i, s in enumerate(seen) if i == 0 or s != seen[i - 1]]
            assert [s for s in grown if s] == [tuple(names[:n]) for n in range(1, 6)]
            # A new broker reads the same image from etcd.
            async with broker(etcd, 3) as c:
                assert list(c.image.topics) == names
                assert c.image.controller_id == 1
    run(main)


def test_only_the_controller_commits_and_a_deposed_one_is_fenced(etcd: EtcdCluster) -> None:
    async def main() -> None:
        async with broker(etcd, 1) as a, broker(etcd, 2) as b:
            await b.wait_for(lambda i: set(i.brokers) == {1, 2}, WAIT)
            with pytest.raises(NotControllerError):
                await create_topic(b, "from-b")
            await create_topic(a, "from-a")
            deposed = a.session.candidacy
            # The controller's lease is revoked (as when it expires while the
            # broker is paused): b becomes controller.
            admin = EtcdClient(etcd.endpoints)
            await admin.revoke_lease(a.session.lease_id)
            await b.wait_for(lambda i: i.controller_id == 2, WAIT)
            assert b.is_controller
            # The deposed controller's transaction is refused by etcd itself,
            # whatever its image still says.
            records = a.operations.create_topic_records("from-deposed", 1, 1, {})
            with pytest.raises(NotControllerError):
                await write_batch(admin, a.keys, deposed, 2, records)
            with pytest.raises(NotControllerError):
                await create_topic(a, "from-a-again")
            await create_topic(b, "from-b")
            image = await a.wait_for(lambda i: "from-b" in i.topics, WAIT)
            assert "from-deposed" not in image.topics and "from-a-again" not in image.topics
            # a noticed its lease was gone and registered anew, behind b.
            image = await b.wait_for(lambda i: set(i.brokers) == {1, 2}, WAIT)
            assert image.controller_id == 2
            await admin.close()
    run(main)


def test_lease_expiry_removes_a_dead_broker_and_moves_the_controller(
        etcd: EtcdCluster) -> None:
    async def main() -> None:
        async with broker(etcd, 2) as b:
            a = EtcdMetadataStore(EtcdClient(etcd.endpoints, request_timeout=2.0),
                                  cluster="c1", node_id=1, listener=("127.0.0.1", 9001),
                                  lease_ttl=TTL)
            await a.start()
            await b.wait_for(lambda i: set(i.brokers) == {1, 2}, WAIT)
            assert b.image.controller_id == 2
            # The same node id cannot register twice while the first lives.
            twin = EtcdMetadataStore(EtcdClient(etcd.endpoints), cluster="c1", node_id=1,
                                     listener=("127.0.0.1", 9101), lease_ttl=TTL)
            with pytest.raises(DuplicateBrokerRegistrationError):
                await twin.start()
            await twin.stop()
            await b.stop()  # controller shuts down cleanly: lease revoked at once
            image = await a.wait_for(lambda i: i.controller_id == 1, WAIT)
            assert set(image.brokers) == {1}
            await create_topic(a, "after-failover")
            async with broker(etcd, 3) as c:
                await c.wait_for(lambda i: set(i.brokers) == {1, 3}, WAIT)
                loop = asyncio.get_running_loop()
                crashed_at = loop.time()
                await a.stop(deregister=False)  # a crash: the lease is left to expire
                image = await c.wait_for(lambda i: set(i.brokers) == {3}, WAIT)
                waited = loop.time() - crashed_at
                assert image.controller_id == 3 and c.is_controller
                # Gone by lease expiry, not before (etcd may round the TTL up).
                assert waited >= TTL * 0.5
                assert "after-failover" in c.image.topics
    run(main)


def test_watch_resumes_after_an_etcd_restart(etcd: EtcdCluster) -> None:
    async def main() -> None:
        async with broker(etcd, 1) as a, broker(etcd, 2) as b:
            await b.wait_for(lambda i: set(i.brokers) == {1, 2}, WAIT)
            await create_topic(a, "before")
            await b.wait_for(lambda i: "before" in i.topics, WAIT)
            reloads = b.reloads
            # The store's tasks run meanwhile (the restart blocks this thread
            # only while etcd is down and starting).
            await asyncio.to_thread(etcd.restart, etcd.members[0])
            image = await retry_not_controller(lambda: create_topic(a, "after"))
            assert "after" in image.topics
            image = await b.wait_for(lambda i: "after" in i.topics, WAIT)
            assert list(image.topics) == ["before", "after"]
            assert b.reloads == reloads  # resumed from its revision, no full read
    run(main)


def test_compacted_watch_reloads_the_whole_image(etcd: EtcdCluster) -> None:
    async def main() -> None:
        async with broker(etcd, 1) as a, broker(etcd, 2) as b:
            await b.wait_for(lambda i: set(i.brokers) == {1, 2}, WAIT)
            await create_topic(a, "t0")
            await b.wait_for(lambda i: "t0" in i.topics, WAIT)
            # b stops following (as if cut off), history is compacted meanwhile.
            follow = b._tasks[0]
            follow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await follow
            for name in ("t1", "t2"):
                await create_topic(a, name)
            revision = a.revision
            import aetcd  # the compaction call is an operator's, not strom's

            async with aetcd.Client(*etcd.members[0].endpoint.split(":")) as admin:
                await admin.compact(revision, physical=True)
            reloads = b.reloads
            b._tasks[0] = asyncio.create_task(b._follow())
            image = await b.wait_for(lambda i: len(i.topics) == 3, WAIT)
            assert list(image.topics) == ["t0", "t1", "t2"]
            assert b.reloads == reloads + 1
            await create_topic(a, "t3")
            await b.wait_for(lambda i: "t3" in i.topics, WAIT)
    run(main)


def test_three_member_etcd_keeps_working_with_a_member_killed(etcd3: EtcdCluster) -> None:
    async def main() -> None:
        async with broker(etcd3, 1) as a, broker(etcd3, 2) as b:
            await b.wait_for(lambda i: set(i.brokers) == {1, 2}, WAIT)
            await create_topic(a, "before")
            # Both talk to the first member; kill it.
            assert a._client.endpoint == etcd3.members[0].endpoint
            etcd3.members[0].kill()
            image = await retry_not_controller(lambda: create_topic(a, "after"))
            assert "after" in image.topics
            image = await b.wait_for(lambda i: "after" in i.topics, WAIT)
            assert list(image.topics) == ["before", "after"]
            assert set(image.brokers) == {1, 2} and image.controller_id == 1
    run(main)


async def retry_not_controller(op: Callable[[], Awaitable[T]]) -> T:
    """Retry what a client would while etcd recovers (retriable errors), within WAIT."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    delay = 0.05
    while True:
        try:
            return await op()
        except Exception as exc:
            retriable = getattr(exc, "retriable", False)
            if not retriable or loop.time() > deadline:
                raise
            await asyncio.sleep(delay)  # a client's retry backoff
            delay = min(delay * 2, 0.5)


def test_a_caller_giving_up_does_not_stop_the_controller(etcd: EtcdCluster) -> None:
    async def main() -> None:
        async with broker(etcd, 1) as a:
            await a.wait_for(lambda i: i.controller_id == 1, WAIT)
            started = asyncio.Event()

            def op() -> list[MetadataRecord]:
                started.set()
                return a.operations.create_topic_records("given-up", 1, 1, {})
            caller = asyncio.create_task(a.submit(op))
            await asyncio.wait_for(started.wait(), WAIT)
            caller.cancel()  # while its batch is being written
            image = await asyncio.wait_for(create_topic(a, "after"), WAIT)
            assert {"given-up", "after"} <= set(image.topics)
    run(main)


def test_a_topic_created_twice_at_once_is_created_once(etcd: EtcdCluster) -> None:
    """Records made from the same image by two callers at once (several brokers
    creating `__consumer_offsets` on their first FindCoordinator): the second
    batch is refused, TOPIC_ALREADY_EXISTS, instead of creating the topic again
    with a new id and placement (every broker then dropped and reloaded its
    coordinators' partitions, and a group had two coordinators)."""
    async def main() -> None:
        async with broker(etcd, 1) as a:
            await a.wait_for(lambda i: i.controller_id == 1, WAIT)
            first = a.operations.create_topic_records("state", 3, 1, {})
            second = a.operations.create_topic_records("state", 3, 1, {})
            results = await asyncio.gather(a.commit(first), a.commit(second),
                                           return_exceptions=True)
            assert isinstance(results[0], MetadataImage)
            assert isinstance(results[1], TopicAlreadyExistsError)
            created = results[0].topics["state"].topic_id
            assert a.image.topics["state"].topic_id == created
    run(main)
