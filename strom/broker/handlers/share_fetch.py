"""ShareFetch: records for share group members (KIP-932), from partition leaders.

Versions: 1-2 (v0 was KIP-932's early access; Kafka 4.x serves 1-2; v2 adds
RENEW acknowledgements, is_renew_ack and share_acquire_mode). The share
session (broker/share/sessions.py) says which partitions the request covers;
acknowledgements ride along and are applied first (their results in
acknowledge_error_code); then each partition's share partition acquires
records for the member (broker/share/manager.py), and the answer carries the
batches holding them with the acquired ranges and their delivery counts. With
nothing to acquire the request waits up to max_wait for appends or released
records (not polling); a renew-only request (is_renew_ack) answers at once.
A closing request (epoch -1) acknowledges, releases what the member still
holds and fetches nothing. Checks: READ on the group (else
GROUP_AUTHORIZATION_FAILED for the whole request), READ on each topic.
"""

from __future__ import annotations

from typing import Any

from strom.broker.context import RequestContext
from strom.broker.purgatory import AppendNotifier, wait_any
from strom.broker.router import handles
from strom.broker.share import requests as share_requests
from strom.broker.share.requests import (
    Leaders,
    error_response,
    readable_topics,
    refused,
)
from strom.errors import ErrorCode, KafkaError, error_code_for
from strom.protocol.api import ApiKey
from strom.protocol.messages import to_millis


@handles(ApiKey.SHARE_FETCH, min_version=1, max_version=2)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    broker = ctx.broker
    shares = broker.share_partitions
    group_id = request.group_id or ""
    member_id = request.member_id or ""
    if (refusal := refused(ctx, group_id, member_id)) is not None:
        return refusal
    requested = [(t.topic_id, p.partition_index) for t in request.topics for p in t.partitions]
    acks = {(t.topic_id, p.partition_index): p.acknowledgement_batches
            for t in request.topics for p in t.partitions if p.acknowledgement_batches}
    forgotten = [(t.topic_id, p) for t in request.forgotten_topics_data for p in t.partitions]
    try:
        session = shares.sessions.for_fetch(group_id, member_id, request.share_session_epoch,
                                            requested, forgotten, has_acknowledgements=bool(acks),
                                            connection_id=ctx.connection_id)
    except KafkaError as exc:
        return error_response(exc.code, exc.message)
    settings = shares.group_settings(group_id)
    renew = ctx.api_version >= 2 and bool(request.is_renew_ack) \
        and settings.renew_acknowledge_enable
    names = readable_topics(ctx, [tp[0] for tp in (*session.partitions, *acks)])
    leaders = Leaders(ctx)
    answers: dict[tuple[Any, int], dict[str, Any]] = {}
    for (topic_id, index), batches in acks.items():
        entry = answers[(topic_id, index)] = _partition(index)
        try:
            await share_requests.acknowledge(ctx, names, group_id, member_id, topic_id, index,
                                             batches, renew_allowed=renew, settings=settings)
        except KafkaError as exc:
            entry["acknowledge_error_code"] = exc.code
            entry["acknowledge_error_message"] = exc.message
            entry["current_leader"] = leaders.current_leader(topic_id, index, exc)
    if session.final:
        shares.session_closed(session.session)
    elif not renew:
        await _fetch(ctx, request, session.partitions, names, answers, leaders, settings,
                     member_id, group_id, session.initial)
    return {
        "throttle_time": 0, "error_code": ErrorCode.none, "error_message": None,
        "acquisition_lock_timeout": settings.record_lock_duration_ms,
        "responses": _by_topic(answers), "node_endpoints": leaders.node_endpoints(),
    }


async def _fetch(ctx: RequestContext, request: Any, partitions: Any,
                 names: dict[Any, str | None], answers: dict[tuple[Any, int], dict[str, Any]],
                 leaders: Leaders, settings: Any, member_id: str, group_id: str,
                 initial: bool) -> None:
    """Acquire from every partition of the session, waiting up to max_wait
    while there is nothing to acquire."""
    shares = ctx.broker.share_partitions
    # Loaded with the share partition manager just above, not with the
    # handlers at start (issue 19).
    from strom.broker.share.share_partition import AcquireMode

    clock = ctx.broker.clock
    deadline = clock.monotonic() + max(to_millis(request.max_wait), 0) / 1000.0
    mode = AcquireMode(request.share_acquire_mode) if ctx.api_version >= 2 \
        and request.share_acquire_mode in (0, 1) else AcquireMode.BATCH_OPTIMIZED
    while True:
        notifiers: list[AppendNotifier] = []
        budget = request.max_bytes
        records_left = request.max_records
        acquired_any = errors = False
        for topic_id, index in partitions:
            key = (topic_id, index)
            try:
                partition, handle = await share_requests.share_partition(
                    ctx, names, group_id, topic_id, index)
                result = shares.acquire(handle, partition, member_id,
                                        max_records=records_left, max_bytes=max(budget, 0),
                                        first=not acquired_any, settings=settings, mode=mode)
            except KafkaError as exc:
                entry = answers.setdefault(key, _partition(index))
                entry["error_code"] = error_code_for(exc)
                entry["error_message"] = exc.message
                entry["current_leader"] = leaders.current_leader(topic_id, index, exc)
                errors = True
                continue
            notifiers += (partition.appended, handle.released)
            if result.acquired:
                entry = answers.setdefault(key, _partition(index))
                # One buffer: kio's encoder takes bytes (only Fetch has the
                # chunked fast path).
                entry["records"] = b"".join(result.records)
                entry["acquired_records"] = [
                    {"first_offset": r.first_offset, "last_offset": r.last_offset,
                     "delivery_count": r.delivery_count} for r in result.acquired]
                acquired_any = True
                budget -= result.size
                records_left -= sum(r.last_offset - r.first_offset + 1 for r in result.acquired)
            elif initial:
                answers.setdefault(key, _partition(index))
        remaining = deadline - clock.monotonic()
        if acquired_any or errors or remaining <= 0 or not notifiers:
            return
        await wait_any(notifiers, remaining)


def _partition(index: int) -> dict[str, Any]:
    return {"partition_index": index, "error_code": ErrorCode.none, "error_message": None,
            "acknowledge_error_code": ErrorCode.none, "acknowledge_error_message": None,
            "current_leader": {"leader_id": -1, "leader_epoch": -1}, "records": b"",
            "acquired_records": []}


def _by_topic(answers: dict[tuple[Any, int], dict[str, Any]]) -> list[dict[str, Any]]:
    topics: dict[Any, list[dict[str, Any]]] = {}
    for (topic_id, _), entry in answers.items():
        topics.setdefault(topic_id, []).append(entry)
    return [{"topic_id": topic_id, "partitions": entries} for topic_id, entries in topics.items()]
