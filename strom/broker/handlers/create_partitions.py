"""CreatePartitions: grow a topic to a new partition count.

Versions: 0-3. Each topic either lets the controller place the new
partitions or gives one replica assignment per new partition. Shrinking,
keeping the count, or assignments that do not fit fail with Kafka's
INVALID_PARTITIONS / INVALID_REPLICA_ASSIGNMENT messages (see
MetadataOperations.create_partitions_records). A topic named twice fails
with INVALID_REQUEST ("Duplicate topic name."); validate_only changes nothing.
The request is one metadata operation: more than 10,000 new partitions in all
fail every topic with POLICY_VIOLATION, as in Kafka's controller. The new
logs are made by a log job (broker/log_jobs.py), with no directory before
their first record; the response waits for them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from strom.broker.authorization import authorized_names
from strom.broker.client_quotas import mutation_quota
from strom.broker.context import RequestContext
from strom.broker.forwarding import forwarded_to_controller
from strom.broker.router import handles
from strom.cluster.image import MetadataRecord
from strom.cluster.validation import check_records_per_user_op
from strom.errors import ErrorCode, KafkaError
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation, ResourceType


@handles(ApiKey.CREATE_PARTITIONS)
@forwarded_to_controller
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    metadata = ctx.broker.metadata
    validate_only = bool(request.validate_only)
    counts = Counter(t.name for t in request.topics)
    results: list[dict[str, Any]] = []
    reported: set[str] = set()
    # One metadata operation for the whole request: committed once.
    records: list[MetadataRecord] = []
    # controller_mutation_rate: strict (THROTTLING_QUOTA_EXCEEDED) from v3, as Kafka.
    quota = mutation_quota(ctx, 3)
    alterable = authorized_names(ctx, AclOperation.ALTER, ResourceType.TOPIC,
                                 (t.name for t in request.topics))
    for topic in request.topics:
        result: dict[str, Any] = {"name": topic.name, "error_code": ErrorCode.none,
                                  "error_message": None}
        if counts[topic.name] > 1:
            if topic.name in reported:
                continue
            reported.add(topic.name)
            result.update(error_code=ErrorCode.invalid_request,
                          error_message="Duplicate topic name.")
            results.append(result)
            continue
        if topic.name not in alterable:
            # Kafka 4.x's controller answers this without a message.
            result["error_code"] = ErrorCode.topic_authorization_failed
            results.append(result)
            continue
        assignments = (None if topic.assignments is None
                       else [list(a.broker_ids) for a in topic.assignments])
        try:
            added = metadata.operations.create_partitions_records(
                topic.name, topic.count, assignments)
            quota.record(topic.count - len(ctx.broker.image.topics[topic.name].partitions))
            records += added
        except KafkaError as exc:
            result.update(error_code=exc.code, error_message=exc.message)
        results.append(result)
    try:
        check_records_per_user_op(len(records))
        if not validate_only:
            # New logs by a log job (broker/log_jobs.py); answered once made.
            with ctx.broker.replicas.creating_in_background():
                await metadata.commit(records)
    except KafkaError as exc:
        # The whole operation fails, every topic with it (as in Kafka).
        for result in results:
            result.update(error_code=exc.code, error_message=exc.message)
    await ctx.broker.replicas.created()
    return {"throttle_time": quota.throttle_time_ms(), "results": results}
