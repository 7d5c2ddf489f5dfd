"""Fetch: serve record batches from partition logs, long-polling for data.

Versions: 4-18 (v13+ name topics by id). Batches are served as stored, read
from the segment files without decoding. The response waits up to max_wait
until min_bytes are available (woken by appends, not by polling), stops
adding partitions once max_bytes is reached, and honours each partition's
partition_max_bytes; the first batch of the first non-empty partition is
returned even when larger than the limits (KIP-74) so a consumer always
makes progress. Incremental fetch sessions (KIP-227, v7+) are kept by
strom/broker/fetch_sessions.py: it says which partitions to read (the
request's, or the session's) and which of them to answer; followers may use
them too (as privileged sessions), strom's own replica fetcher does not.

A fetch with a replica id (v4-14 `replica_id`, v15+ `replica_state`) is a
follower's (cluster mode): it reads up to the log end offset, not the high
watermark, its fetch offset counts as the follower's log end offset (which
moves the HW and the ISR, Partition.fetch_for_follower), v12+ answers a
`diverging_epoch` where the follower's log stopped agreeing with the
leader's, and it waits for appends rather than for the HW. Only a
partition's leader answers, consumers and followers alike
(NOT_LEADER_OR_FOLLOWER elsewhere).

Zero copy: on uvloop, large partition reads go out as views of read-only
mappings of the segment files (FileRegion.view), which uvloop writev()s
straight from the page cache; nothing in strom touches those bytes. asyncio's
own transports copy (writelines joins, a partial write buffers the rest), so
there the records are pread as before. os.sendfile was measured too: it needs
its own write queue beside the transport's and moved fewer bytes per second
than the mapped writev on loopback (docs/benchmarks.md). TLS connections
(SSL, SASL_SSL) never get views: OpenSSL encrypts from user space, so there
is no copy to save, and touching a truncated mapping would be fatal.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from strom.broker.authorization import authorized_names, cluster_allowed
from strom.broker.context import BrokerServices, RequestContext
from strom.broker.fetch_sessions import FINAL_EPOCH, FetchContext
from strom.broker.partition import Partition
from strom.broker.purgatory import AppendNotifier, wait_any
from strom.broker.replication_quota import LEADER_REPLICAS, ReplicationQuota, throttled
from strom.broker.router import handles
from strom.errors import (
    ErrorCode,
    KafkaError,
    TopicAuthorizationFailedError,
    UnknownTopicIdError,
    error_code_for,
)
from strom.protocol.api import ApiKey
from strom.protocol.messages import to_millis
from strom.security.acl_types import AclOperation, ResourceType

READ_COMMITTED = 1
CONSUMER_REPLICA_ID = -1


def _loop_writes_without_copying(loop: asyncio.AbstractEventLoop) -> bool:
    """True for uvloop, whose transports hand buffers to the kernel untouched."""
    return type(loop).__module__.startswith("uvloop")


def _partition_data(index: int, code: ErrorCode, partition: Partition | None = None,
                    records: list[bytes | memoryview] | None = None) -> dict[str, Any]:
    if partition is not None and not partition.is_leader:
        partition = None  # a follower's offsets are not the partition's (Kafka: -1)
    return {
        "partition_index": index,
        "error_code": code,
        "high_watermark": partition.high_watermark if partition else -1,
        "last_stable_offset": partition.last_stable_offset if partition else -1,
        "log_start_offset": partition.log_start_offset if partition else -1,
        "aborted_transactions": None,
        "preferred_read_replica": -1,
        "records": records or b"",
    }


@handles(ApiKey.FETCH)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    broker = ctx.broker
    clock = broker.clock
    replica_id = (request.replica_state.replica_id if ctx.api_version >= 15
                  else getattr(request, "replica_id", CONSUMER_REPLICA_ID))
    topics = request.topics
    session: FetchContext | None = None
    # A sessionless full fetch (id 0, epoch -1) skips the session layer.
    if ctx.api_version >= 7 and (request.session_id or request.session_epoch != FINAL_EPOCH):
        session = broker.fetch_sessions.new_context(
            session_id=request.session_id, epoch=request.session_epoch, topics=topics,
            forgotten=request.forgotten_topics_data or (), uses_topic_ids=ctx.api_version >= 13,
            privileged=replica_id >= 0, now_ms=round(clock.monotonic() * 1000))
        if session.error:
            return {"throttle_time": 0, "error_code": session.error, "session_id": 0,
                    "responses": []}
        topics = session.topics
    read_committed = getattr(request, "isolation_level", 0) == READ_COMMITTED
    max_wait_s = max(to_millis(request.max_wait), 0) / 1000.0
    deadline = clock.monotonic() + max_wait_s
    # Over TLS the records are encrypted in user space: OpenSSL reads every byte,
    # and a view of a mapping truncated meanwhile would kill the process
    # (SIGBUS) instead of failing one write, so TLS connections get pread bytes.
    zero_copy = (_loop_writes_without_copying(asyncio.get_running_loop())
                 and ctx.security_protocol not in ("SSL", "SASL_SSL"))
    if replica_id >= 0:
        read: PartitionRead = functools.partial(_read_for_follower, replica_id=replica_id,
                                                zero_copy=zero_copy,
                                                quota=ctx.broker.replicas.quotas.leader)
    else:
        read = _consumer_read(read_committed=read_committed, zero_copy=zero_copy)
    readable = _readable(ctx, topics, follower=replica_id >= 0)
    sizes: dict[str, int] = {}
    while True:
        sizes.clear()
        responses, size, notifiers, errors = _read_all(ctx, request, topics, read, readable,
                                                       describe_errors=replica_id < 0,
                                                       sizes=sizes)
        remaining = deadline - clock.monotonic()
        if errors or size >= request.min_bytes or remaining <= 0 or not notifiers:
            break
        await wait_any(notifiers, remaining)
    if broker.stats.enabled:
        _count_bytes_out(broker, sizes, follower=replica_id >= 0)
    session_id, error = 0, ErrorCode.none
    if session is not None:
        session_id, responses = session.finish(responses, round(clock.monotonic() * 1000))
        error = session.error
    return {"throttle_time": 0, "error_code": error, "session_id": session_id,
            "responses": responses}


def _readable(ctx: RequestContext, topics: Any, *, follower: bool) -> set[str] | None:
    """The topics this fetch may read (None: all). Kafka: a follower needs
    CLUSTER_ACTION on the cluster (else every partition is refused), a consumer
    READ on each topic."""
    if not ctx.broker.authorizer.enabled:
        return None
    if follower:
        return None if cluster_allowed(ctx, AclOperation.CLUSTER_ACTION) else set()
    image = ctx.broker.image
    return authorized_names(ctx, AclOperation.READ, ResourceType.TOPIC, (
        image.topic_name(getattr(t, "topic", None), getattr(t, "topic_id", None))
        for t in topics))


#: Reads one partition for a fetch: (its response entry, the bytes read, what
#: wakes a waiting fetch, whether to answer at once). Raises KafkaErrors.
PartitionRead = Callable[[Partition, Any, int, bool],
                         tuple[dict[str, Any], int, AppendNotifier, bool]]


def _read_all(ctx: RequestContext, request: Any, topics: Any, read: PartitionRead,
              readable: set[str] | None, *, describe_errors: bool, sizes: dict[str, int],
              ) -> tuple[list[dict[str, Any]], int, list[AppendNotifier], bool]:
    """Every requested partition through `read`, within the request's max_bytes
    (the first batch read even if larger, KIP-74). describe_errors: a failed
    partition hosted here still shows its offsets (consumers)."""
    broker = ctx.broker
    budget = getattr(request, "max_bytes", 2**31 - 1)
    total = 0
    errors = False
    notifiers: list[AppendNotifier] = []
    responses: list[dict[str, Any]] = []
    for topic in topics:
        topic_id = getattr(topic, "topic_id", None)
        name = broker.image.topic_name(getattr(topic, "topic", None), topic_id)
        partitions = []
        for wanted in topic.partitions:
            index = wanted.partition
            try:
                if name is None:
                    raise UnknownTopicIdError(f"unknown topic id {topic_id}")
                if readable is not None and name not in readable:
                    raise TopicAuthorizationFailedError()
                partition = broker.replicas.get(name, index)
                epoch = getattr(wanted, "current_leader_epoch", -1)
                if epoch != partition.leader_epoch:  # the usual case skips a call
                    partition.check_leader_epoch(epoch)
                limit = max(min(wanted.partition_max_bytes, budget - total), 0)
                data, size, notifier, answer_now = read(partition, wanted, limit, total == 0)
                notifiers.append(notifier)
                total += size
                if size:
                    sizes[name] = sizes.get(name, 0) + size
                errors |= answer_now
                partitions.append(data)
            except KafkaError as exc:
                errors = True
                known = broker.replicas.partitions.get((name, index)) \
                    if name and describe_errors and (readable is None or name in readable) \
                    else None
                partitions.append(_partition_data(index, error_code_for(exc), known))
        responses.append({"topic": name, "topic_id": topic_id, "partitions": partitions})
    return responses, total, notifiers, errors


def _count_bytes_out(broker: BrokerServices, sizes: dict[str, int], *, follower: bool) -> None:
    """Kafka's BytesOutPerSec (consumers) or ReplicationBytesOutPerSec (followers)."""
    for name, size in sizes.items():
        counters = broker.stats.topic(name)
        if follower:
            counters.replication_bytes_out += size
        else:
            counters.bytes_out += size


def _consumer_read(*, read_committed: bool, zero_copy: bool) -> PartitionRead:
    """A consumer's PartitionRead. A closure, not a partial with keywords:
    it is called once per partition, 1,000 times a fetch over 1,000."""

    def read(partition: Partition, wanted: Any, limit: int, first: bool,
             ) -> tuple[dict[str, Any], int, AppendNotifier, bool]:
        fetched = partition.fetch(wanted.fetch_offset, limit, read_committed=read_committed,
                                  min_one_batch=first, zero_copy=zero_copy)
        return {
            "partition_index": wanted.partition,
            "error_code": ErrorCode.none,
            "high_watermark": fetched.high_watermark,
            "last_stable_offset": fetched.last_stable_offset,
            "log_start_offset": fetched.log_start_offset,
            # Consumers drop the records of these (KIP-98).
            "aborted_transactions": fetched.aborted_transactions,
            "preferred_read_replica": -1,
            # Chunks, not one joined buffer: the encoder writes them as they are.
            "records": fetched.records or b"",
        }, fetched.size, partition.appended, False

    return read


def _read_for_follower(partition: Partition, wanted: Any, limit: int, first: bool, *,
                       replica_id: int, zero_copy: bool, quota: ReplicationQuota,
                       ) -> tuple[dict[str, Any], int, AppendNotifier, bool]:
    """A follower's fetch: read up to the log end offset; woken by appends to
    the leader's log (Partition.replica_appended); a diverging epoch is
    answered at once, so the follower truncates first. A follower out of the
    ISR fetching a throttled replica (leader.replication.throttled.*) gets no
    records while the bound is spent (Kafka's shouldLeaderThrottle); its
    fetch offset still counts."""
    limited = quota.limited and replica_id not in partition.isr and throttled(
        partition.config, LEADER_REPLICAS, partition.index, partition.node_id)
    if limited and quota.exceeded():
        limit, first = 0, False
    fetched = partition.fetch_for_follower(
        replica_id, wanted.fetch_offset, getattr(wanted, "last_fetched_epoch", -1),
        limit, min_one_batch=first, zero_copy=zero_copy)
    if limited:
        quota.record(fetched.size)
    data: dict[str, Any] = {
        "partition_index": wanted.partition,
        "error_code": ErrorCode.none,
        "high_watermark": fetched.high_watermark,
        "last_stable_offset": partition.last_stable_offset,
        "log_start_offset": fetched.log_start_offset,
        "aborted_transactions": None,
        "preferred_read_replica": -1,
        "records": fetched.records or b"",
    }
    if fetched.diverging_epoch is not None:
        epoch, end_offset = fetched.diverging_epoch
        data["diverging_epoch"] = {"epoch": epoch, "end_offset": end_offset}
    return data, fetched.size, partition.replica_appended, fetched.diverging_epoch is not None
