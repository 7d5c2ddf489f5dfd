"""Snapshots of the metadata log in etcd (strom/cluster/etcd_snapshots.py),
against real etcd: the controller snapshots past
metadata.log.max.record.bytes.between.snapshots and deletes the batches
before; brokers starting later, or reloading after etcd compacted their
watch, load the snapshot; a controller whose image lags behind cannot write
over a deleted batch number. Every wait has a deadline."""

from __future__ import annotations

import asyncio
import uuid

import aetcd
import pytest

from strom.cluster.etcd_client import EtcdClient, KeyValue
from strom.cluster.etcd_codec import encode_batch
from strom.cluster.etcd_keys import ClusterKeys
from strom.cluster.etcd_snapshots import manifest_key, part_key, replay, snapshot_prefix
from strom.cluster.etcd_store import StaleImageError, write_batch
from strom.cluster.image import MetadataImage, TopicRecord
from tests.cluster.etcd_process import EtcdCluster
from tests.cluster.test_etcd_store import WAIT, broker, create_topic, run


async def _keys_under(etcd: EtcdCluster, prefix: str) -> list[str]:
    client = EtcdClient(etcd.endpoints)
    try:
        _, kvs = await client.get_prefix(prefix)
    finally:
        await client.close()
    return [kv.key for kv in kvs]


def test_snapshot_replaces_the_batches_before_it(etcd: EtcdCluster) -> None:
    async def main() -> None:
        async with broker(etcd, 1, snapshot_bytes=1) as a:
            keys = a.keys
            for i in range(4):
                await create_topic(a, f"t{i}")
            await a.submit(lambda: a.operations.broker_config_records(
                {"log.retention.ms": 5000}, node_id=2))
            last = a._last_batch
            # The snapshot follows the commit's answer; its manifest, seen by
            # the watch, resets the count.
            await a.wait_for(lambda _: a._bytes_since_snapshot == 0, WAIT)
            # Only the last batch is left (the anchor of the next write), with
            # one snapshot of the image after it.
            assert await _keys_under(etcd, keys.metadata_log(0)[:-20]) == [
                keys.metadata_log(last)]
            assert await _keys_under(etcd, snapshot_prefix(keys)) == [
                manifest_key(keys, last), part_key(keys, last, 0)]
            # Writing goes on after it.
            await create_topic(a, "t4")
            async with broker(etcd, 2) as b:
                assert list(b.image.topics) == [f"t{i}" for i in range(5)]
                assert [t.topic_id for t in b.image.topics.values()] == [
                    t.topic_id for t in a.image.topics.values()]
                assert dict(b.image.node_configs) == {2: {"log.retention.ms": 5000}}
    run(main)


def test_compacted_watch_reloads_from_the_snapshot(etcd: EtcdCluster) -> None:
    async def main() -> None:
        async with broker(etcd, 1, snapshot_bytes=1) as a, broker(etcd, 2) as b:
            await b.wait_for(lambda i: set(i.brokers) == {1, 2}, WAIT)
            await create_topic(a, "t0")
            await b.wait_for(lambda i: "t0" in i.topics, WAIT)
            follow = b._tasks[0]  # b is cut off while batches and snapshots go by
            follow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await follow
            for name in ("t1", "t2", "t3"):
                await create_topic(a, name)
            async with aetcd.Client(*etcd.members[0].endpoint.split(":")) as admin:
                await admin.compact(a.revision, physical=True)
            reloads = b.reloads
            b._tasks[0] = asyncio.create_task(b._follow())
            image = await b.wait_for(lambda i: len(i.topics) == 4, WAIT)
            assert list(image.topics) == ["t0", "t1", "t2", "t3"]
            assert b.reloads == reloads + 1
            await create_topic(a, "t4")
            await b.wait_for(lambda i: "t4" in i.topics, WAIT)
    run(main)


def test_a_lagging_controller_cannot_write_a_deleted_batch_number(etcd: EtcdCluster) -> None:
    async def main() -> None:
        async with broker(etcd, 1, snapshot_bytes=1) as a:
            await create_topic(a, "t0")
            seen_seq, seen_revision = a._last_batch, a._last_batch_revision
            for name in ("t1", "t2"):
                await create_topic(a, name)
            await a.wait_for(lambda _: a._bytes_since_snapshot == 0, WAIT)
            # Batch seen_seq + 1 was deleted by a snapshot: free for etcd, but
            # not for a controller whose image stopped at seen_seq.
            stale = [TopicRecord("stale", uuid.uuid4())]
            with pytest.raises(StaleImageError):
                await write_batch(a._client, a.keys, a.session.candidacy, seen_seq + 1,
                                  stale, seen_revision)
            assert "stale" not in a.image.topics
    run(main)


def test_replay_skips_a_snapshot_without_all_its_parts() -> None:
    keys = ClusterKeys("c")
    empty = MetadataImage("c", -1, {})
    one, two = TopicRecord("one", uuid.uuid4()), TopicRecord("two", uuid.uuid4())

    def kv(key: str, value: bytes, revision: int = 1) -> KeyValue:
        return KeyValue(key, value, revision, revision, 0)

    others = [kv(manifest_key(keys, 3), b'{"version": 1, "parts": 1}'),
              kv(part_key(keys, 3, 0), encode_batch([one])),
              kv(manifest_key(keys, 5), b'{"version": 1, "parts": 2}'),  # part 1 missing
              kv(part_key(keys, 5, 0), encode_batch([two]))]
    batches = [(3, kv(keys.metadata_log(3), encode_batch([one]), 7)),
               (4, kv(keys.metadata_log(4), encode_batch([two]), 8))]
    replayed = replay(keys, empty, batches, others)
    assert list(replayed.image.topics) == ["one", "two"]
    assert (replayed.last_batch, replayed.last_batch_revision) == (4, 8)
    assert replayed.bytes_since_snapshot == len(batches[1][1].value)
