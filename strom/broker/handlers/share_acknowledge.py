"""ShareAcknowledge: a share group member settles records it acquired (KIP-932).

Versions: 1-2 (v2: RENEW acknowledgements, is_renew_ack). The share session's
epoch must follow on (it cannot open a session: epoch 0 is
INVALID_SHARE_SESSION_EPOCH); epoch -1 closes the session after applying the
acknowledgements and releases what the member still holds. Each partition's
acknowledgements apply all or nothing and answer once the share partition's
state is written (broker/share/requests.py lists the per-partition errors).
Checks: READ on the group (GROUP_AUTHORIZATION_FAILED), READ on each topic.
"""

from __future__ import annotations

from typing import Any

from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.broker.share import requests as share_requests
from strom.broker.share.requests import (
    Leaders,
    error_response,
    readable_topics,
    refused,
)
from strom.errors import ErrorCode, KafkaError
from strom.protocol.api import ApiKey


@handles(ApiKey.SHARE_ACKNOWLEDGE, min_version=1, max_version=2)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    shares = ctx.broker.share_partitions
    group_id = request.group_id or ""
    member_id = request.member_id or ""
    if (refusal := refused(ctx, group_id, member_id)) is not None:
        return refusal
    try:
        session = shares.sessions.for_acknowledge(group_id, member_id,
                                                  request.share_session_epoch)
    except KafkaError as exc:
        return error_response(exc.code, exc.message)
    settings = shares.group_settings(group_id)
    renew = ctx.api_version >= 2 and bool(request.is_renew_ack) \
        and settings.renew_acknowledge_enable
    names = readable_topics(ctx, [t.topic_id for t in request.topics])
    leaders = Leaders(ctx)
    responses = []
    for topic in request.topics:
        partitions = []
        for wanted in topic.partitions:
            index = wanted.partition_index
            entry: dict[str, Any] = {"partition_index": index, "error_code": ErrorCode.none,
                                     "error_message": None,
                                     "current_leader": {"leader_id": -1, "leader_epoch": -1}}
            try:
                await share_requests.acknowledge(
                    ctx, names, group_id, member_id, topic.topic_id, index,
                    wanted.acknowledgement_batches, renew_allowed=renew, settings=settings)
            except KafkaError as exc:
                entry.update(error_code=exc.code, error_message=exc.message,
                             current_leader=leaders.current_leader(topic.topic_id, index, exc))
            partitions.append(entry)
        responses.append({"topic_id": topic.topic_id, "partitions": partitions})
    if session.final:
        shares.session_closed(session.session)
    return {"throttle_time": 0, "error_code": ErrorCode.none, "error_message": None,
            "acquisition_lock_timeout": settings.record_lock_duration_ms,
            "responses": responses, "node_endpoints": leaders.node_endpoints()}
