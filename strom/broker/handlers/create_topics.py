"""CreateTopics: create topics with partitions, assignments and configs.

Versions: 2-7. validate_only checks everything and creates nothing. From v5
the response lists the new topic's configs; from v7 its topic id. A topic
named twice in one request fails with INVALID_REQUEST, as in Kafka. The
request is one metadata operation: the records of all its valid topics are
committed together, and a request asking for more than 10,000 partitions, or
producing more than 10,000 metadata records (a topic of N partitions is N + 1),
fails as a whole with POLICY_VIOLATION, as Kafka's controller does. The new
partitions' logs are made by a log job (broker/log_jobs.py) in chunks while
other clients are served; they touch no disk before their first record
(storage/log.py). The response waits for them, so the topic takes produce
at once (others asking meanwhile get NOT_LEADER_OR_FOLLOWER, retriable).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from strom.broker.authorization import authorized_names, cluster_allowed
from strom.broker.client_quotas import mutation_quota
from strom.broker.configs import topic_config_entries
from strom.broker.context import RequestContext
from strom.broker.forwarding import forwarded_to_controller
from strom.broker.router import handles
from strom.broker.topics import topic_records
from strom.cluster.image import MetadataRecord
from strom.cluster.validation import check_partitions_per_request, check_records_per_user_op
from strom.config import BrokerConfig
from strom.errors import ErrorCode, InvalidRequestError, KafkaError
from strom.protocol.api import ApiKey
from strom.protocol.messages import ZERO_UUID
from strom.security.acl_types import AclOperation, ResourceType


@handles(ApiKey.CREATE_TOPICS)
@forwarded_to_controller
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    broker = ctx.broker
    validate_only = bool(getattr(request, "validate_only", False))
    counts = Counter(t.name for t in request.topics)
    try:
        check_partitions_per_request(sum(_partitions_asked(broker.config, t)
                                         for t in request.topics))
    except KafkaError as exc:
        return _all_failed(request, exc)
    results = []
    # One metadata operation for the whole request, as Kafka's controller:
    # the records of every valid topic, committed (and persisted) once.
    records: list[MetadataRecord] = []
    # controller_mutation_rate: strict (THROTTLING_QUOTA_EXCEEDED) from v6, as Kafka.
    quota = mutation_quota(ctx, 6)
    created: dict[str, dict[str, Any]] = {}
    pending: dict[str, str] = {}
    names = [t.name for t in request.topics]
    creatable = (set(names) if cluster_allowed(ctx, AclOperation.CREATE)
                 else authorized_names(ctx, AclOperation.CREATE, ResourceType.TOPIC, names))
    # The answer shows a created topic's configs only to who may describe them.
    describable = authorized_names(ctx, AclOperation.DESCRIBE_CONFIGS, ResourceType.TOPIC,
                                   names)
    for wanted in request.topics:
        result: dict[str, Any] = {
            "name": wanted.name, "topic_id": ZERO_UUID, "error_code": ErrorCode.none,
            "error_message": None, "num_partitions": -1, "replication_factor": -1,
            "configs": [],
        }
        results.append(result)
        if counts[wanted.name] > 1:
            result.update(error_code=ErrorCode.invalid_request,
                          error_message="Create topics request from client contains "
                          "duplicate topics")
            continue
        if wanted.name not in creatable:
            result.update(error_code=ErrorCode.topic_authorization_failed,
                          error_message="Authorization failed.")
            continue
        try:
            if wanted.assignments and (wanted.num_partitions != -1
                                       or wanted.replication_factor != -1):
                raise InvalidRequestError("Both numPartitions or replicationFactor and "
                               "replicasAssignments were set. Both cannot be used at the "
                               "same time.")
            assignments = {a.partition_index: list(a.broker_ids) for a in wanted.assignments}
            configs = {c.name: c.value for c in wanted.configs}
            made = topic_records(
                broker, wanted.name, wanted.num_partitions, wanted.replication_factor,
                configs, assignments or None, pending,
            )
            quota.record(_partitions_asked(broker.config, wanted))
            records += made
            created[wanted.name] = result
        except KafkaError as exc:
            result.update(error_code=exc.code, error_message=exc.message)
    try:
        check_records_per_user_op(len(records))
        if validate_only:
            image = broker.image.apply(records)
        else:
            # The logs are made by a log job (broker/log_jobs.py); the
            # answer waits for them, so the topic takes produce at once.
            with broker.replicas.creating_in_background():
                image = await broker.metadata.commit(records)
    except KafkaError as exc:
        return _all_failed(request, exc)
    await broker.replicas.created()
    for name, result in created.items():
        topic = image.topics[name]
        entries = topic_config_entries(broker.config, topic.configs)
        result.update(
            topic_id=ZERO_UUID if validate_only else topic.topic_id,
            num_partitions=len(topic.partitions),
            replication_factor=topic.replication_factor,
            configs=[{k: e[k] for k in ("name", "value", "read_only", "config_source",
                                       "is_sensitive")} for e in entries],
        )
        if name not in describable:
            result["configs"] = []
            if ctx.api_version >= 5:
                result["topic_config_error_code"] = ErrorCode.topic_authorization_failed
    return {"throttle_time": quota.throttle_time_ms(), "topics": results}


def _partitions_asked(config: BrokerConfig, topic: Any) -> int:
    """The partitions a topic asks for, counted as Kafka's controller does."""
    if topic.assignments:
        return len(topic.assignments)
    if topic.num_partitions == -1:
        default = config.get("num.partitions")
        assert isinstance(default, int)
        return default
    return max(int(topic.num_partitions), 0)


def _all_failed(request: Any, exc: KafkaError) -> dict[str, Any]:
    """Every topic fails with the same error (Kafka's getErrorResponse)."""
    return {"throttle_time": 0, "topics": [
        {"name": t.name, "topic_id": ZERO_UUID, "error_code": exc.code,
         "error_message": exc.message, "num_partitions": -1, "replication_factor": -1,
         "configs": []} for t in request.topics]}
