"""The cluster-mode metadata store: the metadata image kept in etcd.

Layout and election: cluster/etcd_keys.py. Values: cluster/etcd_codec.py.
Lease, registration and candidacy: cluster/etcd_session.py.

How the image follows etcd. One watch of the cluster's key prefix, from the
revision after the last one applied, yields every change in revision order;
each is applied to the image by the one task that owns it (`_follow`):
registrations become `brokers`, the candidate with the lowest create revision
becomes `controller_id`, and each metadata batch is applied with
`MetadataImage.apply`, as the single node applies its own. When the watch
breaks (a member died, etcd restarted), it resumes from the last applied
revision, skipping the keys of that revision already applied (a revision's
events may be split between two streams). When the revisions it needs are
compacted away, the store reads the whole prefix at one revision and builds
the image anew (a full snapshot), then watches on from there.

How the controller writes. Operations run one at a time in the order they
were submitted, each against the newest image (validate, then commit): a
batch goes to `metadata/log/<n+1>` in a transaction that compares the
controller's candidate key (it must still exist with the create revision it
won with: a deposed controller cannot write) and `log/<n+1>` (it must not
exist: nobody wrote after the image this operation was validated against).
The commit returns once this broker's watch has applied the batch, so every
broker, the controller included, changes its image by the same path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

from strom.cluster import features, metadata_version
from strom.cluster.elections import ControllerSettings
from strom.cluster.etcd_client import (
    CompactedError,
    CreatedAt,
    EtcdClient,
    EtcdError,
    EventKind,
    KeyValue,
    Put,
    WatchEvent,
)
from strom.cluster.etcd_codec import (
    CodecError,
    decode_batch,
    decode_candidate,
    decode_registration,
    encode_batch,
)
from strom.cluster.etcd_keys import ClusterKeys, KeyKind
from strom.cluster.etcd_session import BrokerSession, Candidacy
from strom.cluster.etcd_snapshots import parse_snapshot_key, replay, write_snapshot
from strom.cluster.image import (
    BrokerInfo,
    Endpoint,
    FeatureLevelRecord,
    MetadataImage,
    MetadataRecord,
    TopicRecord,
)
from strom.cluster.leader_elector import LeaderElector
from strom.cluster.operations import MetadataOperations
from strom.cluster.store import ImageListener
from strom.errors import (
    KafkaError,
    NotControllerError,
    RequestTimedOutError,
    TopicAlreadyExistsError,
    UnsupportedVersionError,
)

log = logging.getLogger(__name__)

# Kafka's "no controller" in Metadata and DescribeCluster responses.
NO_CONTROLLER = -1

Operation = Callable[[], Sequence[MetadataRecord]]


async def write_batch(client: EtcdClient, keys: ClusterKeys, candidacy: Candidacy | None,
                      seq: int, records: Sequence[MetadataRecord],
                      previous_revision: int = 0) -> int:
    """Write batch `seq` as the controller holding `candidacy`; the revision
    it was written at. NotControllerError if the candidacy is gone (deposed)
    or batch `seq` exists (another controller wrote first);
    RequestTimedOutError if etcd did not answer and the batch is not there.
    `previous_revision`: the create revision of batch `seq - 1` as this
    broker applied it (0: unknown), compared too, since a snapshot deletes
    the batches before it (etcd_snapshots.py) and a deleted `seq` must not
    look free to a controller whose image lags behind."""
    if candidacy is None:
        raise NotControllerError("this broker does not stand for controller")
    key = keys.metadata_log(seq)
    value = encode_batch(records)
    compares = [CreatedAt(candidacy.key, candidacy.create_revision), CreatedAt(key, 0)]
    if previous_revision:
        compares.append(CreatedAt(keys.metadata_log(seq - 1), previous_revision))
    try:
        result = await client.txn(compares, [Put(key, value)])
    except EtcdError as exc:
        # The transaction may have been applied all the same: read what is there.
        try:
            written = await client.get(key)
        except EtcdError:
            written = None
        if written is not None and written.value == value:
            return written.mod_revision
        raise RequestTimedOutError(f"etcd did not confirm metadata batch {seq}: {exc}") from exc
    if not result.succeeded:
        try:
            own = await client.get(candidacy.key)
        except EtcdError:
            own = None
        if own is not None and own.create_revision == candidacy.create_revision:
            raise StaleImageError(f"metadata batch {seq} exists already")
        raise NotControllerError(
            f"metadata batch {seq} refused: this broker was deposed as controller")
    return result.revision


class StaleImageError(RequestTimedOutError):
    """Still the controller, but batch `seq` exists: this broker's image has
    not caught up yet (a write whose answer was lost, say)."""


class EtcdMetadataStore:
    def __init__(self, client: EtcdClient, *, cluster: str, node_id: int,
                 listener: tuple[str, int], endpoints: tuple[Endpoint, ...] = (),
                 rack: str | None = None, lease_ttl: int = 9,
                 campaign: bool = True, commit_timeout: float = 30.0,
                 root: str = "/strom",
                 controller_settings: ControllerSettings | None = None,
                 snapshot_bytes: int = 20 * 1024 * 1024) -> None:
        self._client = client
        self.keys = ClusterKeys(cluster, root)
        self.node_id = node_id
        host, port = listener
        registration = BrokerInfo(node_id, host, port, rack, endpoints=endpoints)
        self.session = BrokerSession(client, self.keys, registration,
                                     ttl=lease_ttl, campaign=campaign)
        self.commit_timeout = commit_timeout
        self.image = MetadataImage(cluster, NO_CONTROLLER, {}, controller_epoch=-1)
        self.operations = MetadataOperations(lambda: self.image, node_id)
        self._listeners: list[ImageListener] = []
        # What the watch has applied: candidates by key -> (create revision, node id).
        self._candidates: dict[str, tuple[int, int]] = {}
        self._last_batch = 0
        # The last revision applied, and which of its keys (None: all of them).
        # The create revision of the last batch's key (0: not read), and the
        # bytes of batches since the newest snapshot (etcd_snapshots.py): the
        # controller snapshots past `snapshot_bytes`.
        self._last_batch_revision = 0
        self._bytes_since_snapshot = 0
        self.snapshot_bytes = snapshot_bytes
        self.revision = 0
        self._keys_at_revision: set[str] | None = None
        self._waiters: list[tuple[Callable[[MetadataImage], bool], asyncio.Future[None]]] = []
        self._operations: asyncio.Queue[tuple[Operation, asyncio.Future[MetadataImage]]] = (
            asyncio.Queue())
        self._tasks: list[asyncio.Task[None]] = []
        #: Times the image was rebuilt from a full read (start-up, compaction).
        self.reloads = 0
        self.elector = LeaderElector(self._enqueue, lambda: self.is_controller,
                                     lambda: self.image,
                                     controller_settings or ControllerSettings(), node_id)

    # --- life cycle -------------------------------------------------------------

    async def start(self) -> None:
        """Register, stand for controller, read the cluster's state, follow it.
        A registration of this node id left by a crashed process is waited out
        (its lease expires within its time to live); one that outlives that
        belongs to a live broker: DuplicateBrokerRegistrationError. A cluster
        whose metadata.version is newer than this strom's: UnsupportedVersionError."""
        await self.session.open(wait_s=self.session.ttl + 2.0)
        await self._reload()
        level = self.image.metadata_version
        if level > metadata_version.LATEST:
            # Kafka's controller refuses to register a broker that does not
            # support the finalized level: it could not read what the cluster writes.
            with contextlib.suppress(EtcdError):
                await self.session.close()
            raise UnsupportedVersionError(
                f"the cluster's metadata.version is {level} "
                f"({metadata_version.release(level)}); this strom supports "
                f"{metadata_version.MINIMUM}-{metadata_version.LATEST}: run a newer strom")
        self._tasks = [asyncio.create_task(self._follow(), name="etcd-follow"),
                       asyncio.create_task(self.session.keep_alive(), name="etcd-keep-alive"),
                       asyncio.create_task(self._run_operations(), name="etcd-controller"),
                       asyncio.create_task(self.elector.rebalance(), name="etcd-rebalance")]

    async def stop(self, *, deregister: bool = True) -> None:
        """Stop following; revoke the lease (deregister, resign) unless told
        not to, as a crashed broker would not (its lease then expires)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for _, future in self._waiters:
            if not future.done():
                future.cancel()
        if deregister:
            with contextlib.suppress(EtcdError):
                await self.session.close()
        await self._client.close()

    async def controlled_shutdown(self, timeout: float) -> bool:
        """Kafka's controlled shutdown: mark this broker's registration fenced
        (same lease), so the controller (this broker, or another) moves every
        leadership away and drops it from every ISR; wait until this broker's
        image shows it leads nothing, at most `timeout` seconds. True if so."""
        try:
            if not await self.session.fence():
                return False
        except EtcdError as exc:
            log.warning("broker %d: cannot mark the registration fenced: %s", self.node_id, exc)
            return False
        node_id = self.node_id

        def leads_nothing(image: MetadataImage) -> bool:
            me = image.brokers.get(node_id)
            if me is not None and not me.fenced:
                return False
            return not any(p.leader == node_id
                           for t in image.topics.values() for p in t.partitions)

        try:
            await self.wait_for(leads_nothing, timeout)
        except TimeoutError:
            led = sum(p.leader == node_id for t in self.image.topics.values()
                      for p in t.partitions)
            log.warning("broker %d: controlled shutdown timed out after %.0fs still leading "
                        "%d partition(s)", node_id, timeout, led)
            return False
        return True

    @property
    def metadata_batches(self) -> int:
        """The sequence number of the last metadata batch applied: 0 while the
        cluster's metadata log in etcd has never been written."""
        return self._last_batch

    # --- the MetadataStore protocol --------------------------------------------

    def subscribe(self, listener: ImageListener) -> None:
        self._listeners.append(listener)

    @property
    def is_controller(self) -> bool:
        """This broker's candidacy is the oldest in the image."""
        candidacy = self.session.candidacy
        return candidacy is not None and self._controller_key() == candidacy.key

    async def commit(self, records: Sequence[MetadataRecord]) -> MetadataImage:
        """Write the records as the controller; the image once applied here."""
        if not records:
            return self.image
        batch = list(records)
        created = [r.name for r in batch if isinstance(r, TopicRecord)]

        def operation() -> list[MetadataRecord]:
            # The records were made from the image as it was before this
            # operation's turn: a topic created meanwhile (a coordinator's
            # state topic asked for by several brokers at once) must not be
            # created again, with a new id and placement: every broker would
            # drop its partitions and coordinators' state and load again.
            for name in created:
                if name in self.image.topics:
                    raise TopicAlreadyExistsError(f"Topic '{name}' already exists.")
            return batch
        return await self.submit(operation)

    async def submit(self, operation: Operation) -> MetadataImage:
        """Run `operation` (validate against `self.image`, return the records)
        in turn with the other operations, and commit what it returns."""
        return await self._enqueue(operation)

    def _enqueue(self, operation: Operation) -> asyncio.Future[MetadataImage]:
        future: asyncio.Future[MetadataImage] = asyncio.get_running_loop().create_future()
        self._operations.put_nowait((operation, future))
        return future

    async def wait_for(self, predicate: Callable[[MetadataImage], bool],
                       timeout: float) -> MetadataImage:
        """The first image (this one or a later) for which `predicate` holds;
        TimeoutError after `timeout` seconds."""
        if predicate(self.image):
            return self.image
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(future, timeout)
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)
        return self.image

    # --- the controller ---------------------------------------------------------

    async def _run_operations(self) -> None:
        while True:
            operation, future = await self._operations.get()
            if future.done():
                continue  # its caller gave up
            # Its caller may give up (cancel the future) while the batch is
            # written: answering a done future would raise and end this loop,
            # and with it every later operation of the controller.
            try:
                image = await self._commit_one(operation)
            except KafkaError as exc:
                if not future.done():
                    future.set_exception(exc)
            except Exception as exc:  # a bug in an operation: its caller gets it, not us
                log.exception("metadata operation failed")
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(image)
                if self._bytes_since_snapshot >= self.snapshot_bytes:
                    await self._snapshot()

    async def _commit_one(self, operation: Operation) -> MetadataImage:
        if not self.is_controller:
            raise NotControllerError(
                f"broker {self.node_id} is not the controller (the controller is "
                f"{self.image.controller_id})")
        records = operation()
        if not records:
            return self.image
        seq = self._last_batch + 1
        if seq == 1 and (level := features.bootstrap_level(self.image)) > metadata_version.MINIMUM:
            # A new cluster (its metadata never written) starts at the newest
            # metadata.version its brokers support, as Kafka's format does
            # (none at the minimum: an older strom cannot read the record).
            records = [FeatureLevelRecord(metadata_version.FEATURE_NAME, level), *records]
        metadata_version.check_records(self.image.metadata_version, records)
        try:
            revision = await write_batch(self._client, self.keys, self.session.candidacy,
                                         seq, records, self._last_batch_revision)
        except StaleImageError:
            # Catch up, then validate against the newer image and write again.
            try:
                await self.wait_for(lambda _: self._last_batch >= seq, self.commit_timeout)
            except TimeoutError:
                raise RequestTimedOutError(
                    f"metadata batch {seq} exists but this broker's watch did not see it "
                    f"within {self.commit_timeout}s") from None
            return await self._commit_one(operation)
        try:
            return await self.wait_for(lambda _: self.revision >= revision, self.commit_timeout)
        except TimeoutError:
            raise RequestTimedOutError(
                f"metadata batch {self._last_batch + 1} was written to etcd but not seen by "
                f"this broker's watch within {self.commit_timeout}s") from None

    # --- following etcd -----------------------------------------------------------

    async def _follow(self) -> None:
        backoff = 0.05
        while True:
            skip = self._keys_at_revision
            start = self.revision if skip is not None else self.revision + 1
            try:
                async for event in self._client.watch_prefix(self.keys.prefix, start):
                    if skip and event.kv.mod_revision == start and event.kv.key in skip:
                        continue  # applied before the stream broke
                    self._apply_event(event)
                    backoff = 0.05
            except CompactedError as exc:
                log.warning("broker %d: etcd compacted the metadata watch (%s); reading it anew",
                            self.node_id, exc)
                await self._reload_until_done()
            except EtcdError as exc:
                # Unreachable members, a watch not created in time, a member
                # without a leader: all pass; the image must keep following.
                log.warning("broker %d: etcd watch broke: %s; resuming from revision %d",
                            self.node_id, exc, self.revision)
                # Pacing retries against an etcd that is down; a new stream
                # resumes where this one ended, so nothing is missed.
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)

    async def _reload_until_done(self) -> None:
        backoff = 0.05
        while True:
            try:
                await self._reload()
                return
            except EtcdError as exc:
                log.warning("broker %d: reading the cluster from etcd failed: %s",
                            self.node_id, exc)
                await asyncio.sleep(backoff)  # pacing retries, as in _follow
                backoff = min(backoff * 2, 1.0)
    async def _snapshot(self) -> None:
        """Snapshot the image after the last batch, drop the batches before it."""
        candidacy = self.session.candidacy
        if candidacy is None or not self.is_controller:
            return
        seq = self._last_batch
        try:
            if await write_snapshot(self._client, self.keys, candidacy, seq, self.image):
                log.info("broker %d: metadata snapshot at batch %d; earlier batches deleted",
                         self.node_id, seq)
                self._bytes_since_snapshot = 0
        except EtcdError as exc:  # tried again after the next batch
            log.warning("broker %d: metadata snapshot at batch %d failed: %s", self.node_id,
                        seq, exc)


    async def _reload(self) -> None:
        """Build the image from everything under the prefix, read at one revision."""
        revision, kvs = await self._client.get_prefix(self.keys.prefix)
        brokers: dict[int, BrokerInfo] = {}
        candidates: dict[str, tuple[int, int]] = {}
        image = MetadataImage(self.image.cluster_id, NO_CONTROLLER, {}, controller_epoch=-1)
        batches: list[tuple[int, KeyValue]] = []
        others: list[KeyValue] = []
        for kv in kvs:
            parsed = self.keys.parse(kv.key)
            if parsed is None:
                others.append(kv)  # a snapshot's keys among them
                continue
            try:
                if parsed.kind is KeyKind.BROKER:
                    brokers[parsed.id] = decode_registration(kv.value, kv.create_revision)
                elif parsed.kind is KeyKind.CANDIDATE:
                    candidates[kv.key] = (kv.create_revision, decode_candidate(kv.value))
                else:
                    batches.append((parsed.id, kv))
            except CodecError as exc:
                log.error("broker %d: ignoring etcd key %s: %s", self.node_id, kv.key, exc)
        replayed = replay(self.keys, image, batches, others)
        image, last_batch = replayed.image, replayed.last_batch
        self._last_batch_revision = replayed.last_batch_revision
        self._bytes_since_snapshot = replayed.bytes_since_snapshot
        self._candidates = candidates
        self._last_batch = last_batch
        self.revision = revision
        self._keys_at_revision = None
        self.reloads += 1
        self._publish(replace(image, brokers=brokers, controller_id=self._controller_id(),
                              controller_epoch=self._controller_epoch(), offset=last_batch))

    def _apply_event(self, event: WatchEvent) -> None:
        kv = event.kv
        if kv.mod_revision != self.revision or self._keys_at_revision is None:
            self._keys_at_revision = set()
        self.revision = kv.mod_revision
        self._keys_at_revision.add(kv.key)
        parsed = self.keys.parse(kv.key)
        if parsed is None:
            snapshot = parse_snapshot_key(self.keys, kv.key)
            if snapshot is not None and snapshot.part is None and event.kind is EventKind.PUT:
                self._bytes_since_snapshot = 0  # the batches so far are in it
            self._publish(self.image)  # revision waiters see the progress
            return
        image = self.image
        put = event.kind is EventKind.PUT
        try:
            if parsed.kind is KeyKind.BROKER:
                brokers = dict(image.brokers)
                if put:
                    brokers[parsed.id] = decode_registration(kv.value, kv.create_revision)
                else:
                    brokers.pop(parsed.id, None)
                image = replace(image, brokers=brokers)
            elif parsed.kind is KeyKind.CANDIDATE:
                if put:
                    self._candidates[kv.key] = (kv.create_revision, decode_candidate(kv.value))
                else:
                    self._candidates.pop(kv.key, None)
                image = replace(image, controller_id=self._controller_id(),
                                controller_epoch=self._controller_epoch())
            elif put:  # a metadata batch; deleting old batches changes nothing
                if parsed.id != self._last_batch + 1:
                    log.error("broker %d: metadata batch %d follows batch %d", self.node_id,
                              parsed.id, self._last_batch)
                image = replace(image.apply(decode_batch(kv.value)), offset=parsed.id)
                self._last_batch = parsed.id
                self._last_batch_revision = kv.create_revision
                self._bytes_since_snapshot += len(kv.value)
        except CodecError as exc:
            log.error("broker %d: ignoring etcd key %s: %s", self.node_id, kv.key, exc)
        self._publish(image)

    def _controller_key(self) -> str | None:
        if not self._candidates:
            return None
        return min(self._candidates.items(), key=lambda c: c[1][0])[0]

    def _controller_id(self) -> int:
        key = self._controller_key()
        return NO_CONTROLLER if key is None else self._candidates[key][1]

    def _controller_epoch(self) -> int:
        # The winning candidacy's create revision: what fences a deposed
        # controller's writes, so it grows with every new controller.
        key = self._controller_key()
        return -1 if key is None else self._candidates[key][0]

    def _publish(self, new: MetadataImage) -> None:
        old, self.image = self.image, new
        if new is not old:
            for listener in self._listeners:
                try:
                    listener(old, new)
                except Exception:  # one listener's bug must not stop the others or the watch
                    log.exception("metadata image listener failed")
            self.elector.on_image(old, new)
        for predicate, future in list(self._waiters):
            if not future.done() and predicate(new):
                future.set_result(None)
