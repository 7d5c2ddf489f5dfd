"""Produce: validate one record batch per partition and append it.

Versions: 3-13 (v13 names topics by id); 0-13 advertised, as Kafka 4.x
does. acks=0 gets no response (and a failure closes the connection, the
only way such a client learns of it);
acks=1 is answered once the batch is in the page cache; acks=-1 once the
batch is on every in-sync replica (the high watermark passed it) and, with
`strom.acks.all.fsync` (the default), fsync'd on the leader by the
group-commit flusher, bounded by the request's timeout (REQUEST_TIMED_OUT).
acks=-1 is refused before appending while the partition's ISR is smaller than
`min.insync.replicas` (NOT_ENOUGH_REPLICAS), and answered
NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR shrank below it while the batch
was being replicated, as Kafka does.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from strom.broker.authorization import allowed, authorized_names, has_transactional_batch
from strom.broker.batch_worker import INLINE_UNCOMPRESSED_BYTES, AppendTurn
from strom.broker.context import RequestContext
from strom.broker.deadlines import DeadlinePassed
from strom.broker.parked import Parked
from strom.broker.partition import Partition
from strom.broker.router import handles
from strom.cluster.image import INTERNAL_TOPICS
from strom.coordinator.txn.errors import TransactionNotVerifiedError
from strom.errors import (
    DecompressedSizeError,
    ErrorCode,
    InvalidProducerEpochError,
    InvalidRecordError,
    InvalidRequiredAcksError,
    InvalidTopicError,
    InvalidTxnStateError,
    KafkaError,
    TopicAuthorizationFailedError,
    UnknownTopicIdError,
    UnknownTopicOrPartitionError,
    UnsupportedCompressionTypeError,
    error_code_for,
)
from strom.protocol.api import ApiKey
from strom.protocol.messages import to_millis
from strom.protocol.records import BATCH_HEADER_SIZE, Compression, read_batch_header
from strom.security.acl_types import AclOperation, ResourceType

log = logging.getLogger(__name__)

# The client id Kafka's own admin tooling uses; Kafka lets it append to internal
# topics (AdminUtils.ADMIN_CLIENT_ID).
ADMIN_CLIENT_ID = "__admin_client"


def _partition_response(index: int, code: ErrorCode, *, base_offset: int = -1,
                        log_append_time: int = -1, log_start_offset: int = -1,
                        message: str | None = None) -> dict[str, Any]:
    return {
        "index": index,
        "error_code": code,
        "base_offset": base_offset,
        "log_append_time": log_append_time,
        "log_start_offset": log_start_offset,
        "record_errors": [],
        "error_message": message,
    }


# Kafka 4.x advertises Produce from v0 although it handles only v3+: librdkafka
# enables compression codecs only when it sees v0 advertised (KAFKA-18659).
# Requests below v3 still close the connection.
async def produce(ctx: RequestContext, request: Any) -> dict[str, Any] | Parked | None:
    """The response, or once the batches are appended and an acks=all
    request only waits for their flush or the ISR, that wait (parked.py)."""
    broker = ctx.broker
    responses: list[dict[str, Any]] = []
    durable_waits: list[tuple[dict[str, Any], Partition, int]] = []
    turn: asyncio.Future[None] | None = None
    previous: asyncio.Future[None] | None = None
    # Read once per request: the appends and the wait agree on it.
    fsync = bool(broker.config.get("strom.acks.all.fsync"))
    if broker.authorizer.enabled and _transactional_denied(ctx, request):
        return _refused(ctx, request, ErrorCode.transactional_id_authorization_failed)
    if request.transactional_id is not None and ctx.api_version >= 12:
        # Transaction version 2 may await the coordinator before appending.
        previous, turn = broker.transactions.produce_turn(request.transactional_id)
    try:
        if previous is not None:
            await asyncio.shield(previous)
        failed = await _append_all(ctx, request, responses, durable_waits, fsync)
    finally:
        if turn is not None:
            turn.set_result(None)
    # _respond inline: a coroutine less per request.
    if request.acks == 0:
        ctx.close_connection = failed
        return None
    if durable_waits:
        return _parked(durable_waits, responses, to_millis(request.timeout) / 1000.0, fsync)
    return {"responses": responses, "throttle_time": 0}


@handles(ApiKey.PRODUCE, advertised_min_version=0, parking=produce)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any] | None:
    response = await produce(ctx, request)
    if isinstance(response, Parked):
        return await response  # type: ignore[no-any-return]
    return response


def _transactional_denied(ctx: RequestContext, request: Any) -> bool:
    """Kafka: transactional batches need WRITE on the request's transactional id."""
    if not any(has_transactional_batch(data.records) for topic_data in request.topic_data
               for data in topic_data.partition_data):
        return False
    return request.transactional_id is None or not allowed(
        ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, request.transactional_id)


def _refused(ctx: RequestContext, request: Any, code: ErrorCode) -> dict[str, Any] | None:
    """Every partition fails with `code`; acks=0 learns of it by the connection
    closing (Kafka's getErrorResponse has no response for acks=0)."""
    if request.acks == 0:
        ctx.close_connection = True
        return None
    return {"throttle_time": 0, "responses": [
        {"name": getattr(t, "name", None), "topic_id": getattr(t, "topic_id", None),
         "partition_responses": [_partition_response(p.index, code) for p in t.partition_data]}
        for t in request.topic_data]}


def _writable(ctx: RequestContext, request: Any) -> set[str] | None:
    """The request's topics the principal may WRITE to; None: no authorizer."""
    if not ctx.broker.authorizer.enabled:
        return None
    image = ctx.broker.image
    return authorized_names(ctx, AclOperation.WRITE, ResourceType.TOPIC, (
        image.topic_name(getattr(t, "name", None), getattr(t, "topic_id", None))
        for t in request.topic_data))


async def _append_all(ctx: RequestContext, request: Any, responses: list[dict[str, Any]],
                      durable_waits: list[tuple[dict[str, Any], Partition, int]],
                      fsync: bool) -> bool:
    broker = ctx.broker
    acks = request.acks
    failed = False
    verdicts: dict[tuple[str, int], KafkaError] = {}
    # None (every topic) without an authorizer, tested here: once per request.
    writable = _writable(ctx, request) if broker.authorizer.enabled else None
    if request.transactional_id is not None:
        verdicts = await _verify_transactions(ctx, request,
                                              to_millis(request.timeout) / 1000.0, writable)
    # Appends to a partition happen in arrival order even when a batch waits
    # for a worker thread (batch_worker): queue behind any such batch.
    turns: dict[int, AppendTurn] | None = None
    if AppendTurn.any_outstanding():  # else no partition can have one: skip the look-ups
        targets = _target_partitions(ctx, request)
        if any(partition is not None and partition.append_queued for partition in targets):
            turns = _take_turns(targets, 0)
    position = -1
    try:
        for topic_data in request.topic_data:
            topic_id = getattr(topic_data, "topic_id", None)
            name = getattr(topic_data, "name", None)
            if name is None:  # v13+: named by id
                name = broker.image.topic_name(None, topic_id)
            partition_responses = []
            for data in topic_data.partition_data:
                position += 1
                turn = None if turns is None else turns.get(position)
                if turn is not None:
                    await turn.wait()
                try:
                    partition, records = _checked(ctx, request, name, topic_id, data, verdicts,
                                                  writable)
                    on_worker = False
                    try:
                        appended = partition.append_records_as_leader(
                            records, max_uncompressed_bytes=INLINE_UNCOMPRESSED_BYTES)
                    except DecompressedSizeError:
                        # Too large to decompress on the event loop. Awaited
                        # outside this block: a coroutine suspended in an except
                        # block holds the exception, whose traceback reaches the
                        # partly inflated batch, and chains it to the next one.
                        on_worker = True
                    if on_worker:
                        if turns is None:
                            turns = _take_turns(_target_partitions(ctx, request), position)
                        appended = await partition.append_records_as_leader_on_worker(records)
                    if broker.stats.enabled:
                        counters = broker.stats.topic(partition.topic)
                        counters.messages_in += appended.info.last_offset \
                            - appended.info.first_offset + 1
                        counters.bytes_in += len(records)
                    # _partition_response's dict, built inline (once per batch).
                    response = {
                        "index": data.index, "error_code": ErrorCode.none,
                        "base_offset": appended.info.first_offset,
                        "log_append_time": appended.log_append_time,
                        "log_start_offset": partition.log_start_offset,
                        "record_errors": [], "error_message": None,
                    }
                    if acks == -1 and (fsync or partition.replicated):
                        durable_waits.append((response, partition,
                                              appended.info.last_offset + 1))
                except (UnknownTopicOrPartitionError, UnknownTopicIdError) as exc:
                    failed = True
                    response = _partition_response(data.index, exc.code)
                except KafkaError as exc:
                    failed = True
                    response = _partition_response(data.index, exc.code, message=exc.message)
                    response["record_errors"] = [
                        {"batch_index": e.batch_index, "batch_index_error_message": e.message}
                        for e in getattr(exc, "record_errors", ())
                    ]
                except Exception:
                    log.exception("produce to %s-%s failed", name, data.index,
                                  extra={"topic": name, "partition": data.index,
                                         "client_id": ctx.header.client_id})
                    failed = True
                    response = _partition_response(data.index, ErrorCode.unknown_server_error)
                finally:
                    turn = None if turns is None else turns.get(position)
                    if turn is not None:
                        turn.release()
                partition_responses.append(response)
            responses.append({"name": name, "topic_id": topic_id,
                              "partition_responses": partition_responses})
    finally:
        for turn in (turns or {}).values():
            turn.release()  # a no-op for turns already released
    return failed


def _checked(ctx: RequestContext, request: Any, name: str | None, topic_id: Any, data: Any,
             verdicts: dict[tuple[str, int], KafkaError], writable: set[str] | None,
             ) -> tuple[Partition, memoryview]:
    """The partition and writable records of one partition's data, or the
    KafkaError that rejects them before validation."""
    if request.acks not in (-1, 0, 1):
        raise InvalidRequiredAcksError(f"acks must be -1, 0 or 1, got {request.acks}")
    if name is None:
        raise UnknownTopicIdError(f"unknown topic id {topic_id}")
    if writable is not None and name not in writable:
        raise TopicAuthorizationFailedError()
    if name in INTERNAL_TOPICS and ctx.header.client_id != ADMIN_CLIENT_ID:
        # Only the coordinators write their state topics; a client's batch there
        # would be replayed (and decompressed) by a coordinator. Kafka refuses it
        # the same way (ReplicaManager: internalTopicsAllowed).
        raise InvalidTopicError(f"Cannot append to internal topic {name}")
    partition = ctx.broker.replicas.get(name, data.index)
    if data.records is None:
        raise InvalidRecordError("null records")
    records = data.records
    if not isinstance(records, memoryview) or records.readonly:
        # Offsets are patched in place: only a writable buffer will do.
        records = memoryview(bytearray(records))
    if ctx.header.api_version < 7 and _is_zstd(records):
        raise UnsupportedCompressionTypeError("zstd needs Produce v7 or later (KIP-110)")
    rejected = verdicts.get((partition.topic, partition.index))
    if rejected is not None:
        raise rejected
    if request.acks == -1 and partition.is_leader:
        partition.check_min_isr()
    return partition, records


def _target_partitions(ctx: RequestContext, request: Any) -> list[Partition | None]:
    """The partition each partition_data names, in request order (None where
    there is none: the append loop reports why)."""
    broker = ctx.broker
    targets: list[Partition | None] = []
    for topic_data in request.topic_data:
        name = broker.image.topic_name(getattr(topic_data, "name", None),
                                       getattr(topic_data, "topic_id", None))
        for data in topic_data.partition_data:
            try:
                targets.append(None if name is None else broker.replicas.get(name, data.index))
            except KafkaError:
                targets.append(None)
    return targets


def _take_turns(targets: list[Partition | None], start: int) -> dict[int, AppendTurn]:
    """Turns on every partition from position `start` on, taken at once and
    before any await, so no later request can slip in between."""
    return {position: partition.take_append_turn()
            for position, partition in enumerate(targets)
            if position >= start and partition is not None}


async def _verify_transactions(ctx: RequestContext, request: Any, timeout_s: float,
                               writable: set[str] | None = None,
                               ) -> dict[tuple[str, int], KafkaError]:
    """KIP-890 part 1: a transactional batch that would open a transaction on a
    partition must belong to the producer's ongoing transaction, or a late batch
    (after its transaction's marker) would leave a hanging transaction. From v12
    (transaction version 2, KIP-890 part 2) the partitions are added to the
    transaction here instead (the client sends no AddPartitionsToTxn): all of the
    request's partitions in one coordinator write, and while the producer's
    previous transaction completes that waits for it (bounded by the request's
    timeout) rather than failing the batches for the client to retry after its
    produce backoff. The error for each partition that is not verified; a
    partition that cannot be read here is left to the append loop to reject."""
    coordinator = ctx.broker.transactions
    transactional_id = request.transactional_id
    broker = ctx.broker
    wanted: dict[tuple[int, int], list[tuple[str, int]]] = {}
    for topic_data in request.topic_data:
        topic_id = getattr(topic_data, "topic_id", None)
        name = broker.image.topic_name(getattr(topic_data, "name", None), topic_id)
        if name is None or (writable is not None and name not in writable):
            continue  # the append loop answers it
        for data in topic_data.partition_data:
            try:
                partition = broker.replicas.get(name, data.index)
                records = data.records
                if records is None or len(records) < BATCH_HEADER_SIZE:
                    continue
                header = read_batch_header(records)
            except KafkaError:
                continue
            if not header.is_transactional:
                continue
            entry = partition.producer_state.entries.get(header.producer_id)
            if entry is not None and entry.epoch == header.producer_epoch \
                    and entry.current_txn_first_offset >= 0:
                continue  # already verified when its transaction opened here
            wanted.setdefault((header.producer_id, header.producer_epoch), []).append(
                (partition.topic, partition.index))
    verdicts: dict[tuple[str, int], KafkaError] = {}
    channel = broker.txn_channel
    # In a cluster the producer's coordinator may be another broker (then asked
    # with AddPartitionsToTxn v5, broker/txn_channel.py); a single node is its own.
    node = (await coordinator.coordinator_for(transactional_id)
            if wanted and channel.enabled else broker.node_id)
    for (producer_id, producer_epoch), tps in wanted.items():
        if node is None:
            codes = dict.fromkeys(tps, ErrorCode.coordinator_not_available)
        elif node != broker.node_id:
            codes = await channel.add_partitions(node, transactional_id, producer_id,
                                                 producer_epoch, tps,
                                                 verify_only=ctx.api_version < 12)
        elif ctx.api_version >= 12:
            code = await coordinator.add_partitions(
                transactional_id, producer_id, producer_epoch, tps,
                wait_s=max(min(timeout_s, coordinator.settle_wait_s), 0.0))
            codes = dict.fromkeys(tps, code)
        else:
            codes = coordinator.verify_partitions(transactional_id, producer_id,
                                                  producer_epoch, tps)
        for tp, code in codes.items():
            error = _verification_error(transactional_id, producer_id, tp, code)
            if error is not None:
                verdicts[tp] = error
    return verdicts


def _verification_error(transactional_id: str, producer_id: int, tp: tuple[str, int],
                        code: ErrorCode) -> KafkaError | None:
    if code == ErrorCode.none:
        return None
    if code == ErrorCode.concurrent_transactions:
        # The previous transaction is still writing markers: the client retries.
        return TransactionNotVerifiedError(f"{transactional_id} is completing")
    if code in (ErrorCode.producer_fenced, ErrorCode.invalid_producer_epoch):
        return InvalidProducerEpochError(f"producer {producer_id} is fenced")
    if code in (ErrorCode.invalid_txn_state, ErrorCode.invalid_producer_id_mapping):
        return InvalidTxnStateError(
            f"{tp[0]}-{tp[1]} is not in the transaction of {transactional_id}")
    return TransactionNotVerifiedError(
        f"transaction of {transactional_id} not verified: {code.name}")


def _is_zstd(records: memoryview) -> bool:
    try:
        return read_batch_header(records).compression is Compression.ZSTD
    except KafkaError:
        return False  # validation reports the real problem


def _parked(waits: list[tuple[dict[str, Any], Partition, int]],
            responses: list[dict[str, Any]], timeout_s: float,
            fsync: bool) -> dict[str, Any] | Parked:
    # Per response: on the ISR (the HW passed the batch), and fsync'd here.
    futures: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
    for response, partition, end in waits:
        replicated = partition.replicated_to_isr(end)
        if replicated is not None:
            futures.append((response, replicated))
        if fsync:
            flushed = partition.durable(end)
            if flushed is not None:
                futures.append((response, flushed))

    def finish() -> dict[str, Any]:
        for response, fut in futures:
            if not fut.done() or isinstance(fut.exception(), DeadlinePassed):
                fut.cancel()
                if response["error_code"] == ErrorCode.none:
                    response.update(error_code=ErrorCode.request_timed_out, base_offset=-1)
            elif fut.exception() is not None and response["error_code"] == ErrorCode.none:
                response.update(error_code=error_code_for(fut.exception()),  # type: ignore[arg-type]
                                base_offset=-1)
        return {"responses": responses, "throttle_time": 0}

    if not futures:
        return finish()
    return Parked([fut for _, fut in futures], timeout_s, finish)
