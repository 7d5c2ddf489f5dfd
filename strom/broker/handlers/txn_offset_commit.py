"""TxnOffsetCommit: offsets committed as part of a producer's transaction.

Versions: 0-5 (v3+ carry the consumer's generation and member id, KIP-447;
v5+ is transaction version 2: the group's partition is added to the
transaction here, as the client sends no AddOffsetsToTxn).
The group coordinator writes them to `__consumer_offsets` in a
transactional batch of the producer; they stay pending (OffsetFetch with
require_stable answers UNSTABLE_OFFSET_COMMIT) until the transaction's
marker commits or drops them.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import allowed, authorized_names
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.coordinator.txn.errors import for_version
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation, ResourceType


def _all(request: Any, code: ErrorCode) -> list[dict[str, Any]]:
    return _all_of(request.topics, code)


def _all_of(topics: Any, code: ErrorCode) -> list[dict[str, Any]]:
    return [{"name": t.name, "partitions": [
        {"partition_index": p.partition_index, "error_code": code} for p in t.partitions]}
        for t in topics]


async def _add_group_partition(ctx: RequestContext, request: Any) -> ErrorCode:
    """Transaction version 2: add the group's `__consumer_offsets` partition to
    the producer's transaction at its coordinator, which in a cluster may be
    another broker (asked with AddPartitionsToTxn v5, as the produce path
    does). Asked here, a coordinator that is not loaded answers
    NOT_COORDINATOR: the client retried until it gave up and aborted, so
    a transactional consumer whose group and transaction coordinators
    differed never committed (TestTxnEtl against a cluster)."""
    broker = ctx.broker
    transactions = broker.transactions
    tp = transactions.group_partition(request.group_id)
    channel = broker.txn_channel
    node = (await transactions.coordinator_for(request.transactional_id)
            if channel.enabled else broker.node_id)
    if node is None:
        return ErrorCode.coordinator_not_available
    if node != broker.node_id:
        codes = await channel.add_partitions(node, request.transactional_id,
                                             request.producer_id, request.producer_epoch,
                                             [tp], verify_only=False)
        return codes[tp]
    return await transactions.add_partitions(request.transactional_id, request.producer_id,
                                             request.producer_epoch, [tp])


@handles(ApiKey.TXN_OFFSET_COMMIT)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    if not allowed(ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID,
                   request.transactional_id):
        return {"throttle_time": 0,
                "topics": _all(request, ErrorCode.transactional_id_authorization_failed)}
    if not allowed(ctx, AclOperation.READ, ResourceType.GROUP, request.group_id):
        return {"throttle_time": 0, "topics": _all(request, ErrorCode.group_authorization_failed)}
    readable = authorized_names(ctx, AclOperation.READ, ResourceType.TOPIC,
                                (t.name for t in request.topics))
    denied = [t for t in request.topics if t.name not in readable]
    if denied:
        # Kafka answers the unauthorized topics and commits the others.
        response = {"throttle_time": 0,
                    "topics": _all_of(denied, ErrorCode.topic_authorization_failed)}
        if len(denied) < len(request.topics):
            rest = await _commit(ctx, request, [t for t in request.topics if t.name in readable])
            response["topics"] = rest["topics"] + response["topics"]
        return response
    return await _commit(ctx, request, list(request.topics))


async def _commit(ctx: RequestContext, request: Any, wanted: list[Any]) -> dict[str, Any]:
    broker = ctx.broker
    groups = broker.groups
    # Loaded with the group coordinator (the first ctx.broker.groups), not at
    # start with the handlers (broker/coordinators.py; issue 19).
    from strom.coordinator.group.requests import CommitRequest, PartitionCommit

    if await groups.coordinator_for(request.group_id) != broker.node_id:
        return {"throttle_time": 0, "topics": _all_of(wanted, ErrorCode.not_coordinator)}
    if ctx.api_version >= 5:
        code = await _add_group_partition(ctx, request)
        if code != ErrorCode.none:
            return {"throttle_time": 0, "topics": _all_of(wanted, code)}
    commit = CommitRequest(
        group_id=request.group_id,
        generation_id_or_member_epoch=int(getattr(request, "generation_id", -1)),
        member_id=str(getattr(request, "member_id", "") or ""),
        group_instance_id=getattr(request, "group_instance_id", None),
        retention_time_ms=-1,
        topics=tuple((t.name, tuple(PartitionCommit(
            p.partition_index, p.committed_offset,
            int(getattr(p, "committed_leader_epoch", -1)), p.committed_metadata)
            for p in t.partitions)) for t in wanted),
        api_version=8,
        transactional=True,
    )
    topics = await groups.txn_commit_offsets(commit, request.producer_id,
                                             request.producer_epoch)
    for topic in topics:
        for p in topic["partitions"]:
            p["error_code"] = _for_version(p["error_code"], ctx.api_version)
    return {"throttle_time": 0, "topics": topics}


def _for_version(code: ErrorCode, version: int) -> ErrorCode:
    """Codes older versions do not know: PRODUCER_FENCED before v3, and
    STALE_MEMBER_EPOCH before v6, which Kafka answers as ILLEGAL_GENERATION
    (TxnOffsetCommitRequest.supportsStaleMemberEpochError)."""
    if code == ErrorCode.stale_member_epoch and version < 6:
        return ErrorCode.illegal_generation
    return for_version(code, version, 3)
