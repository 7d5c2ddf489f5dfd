"""CreateTopics: create topics with partitions, assignments and configs.

Versions: 2-7. validate_only checks everything and creates nothing. From v5
the response lists the new topic's configs; from v7 its topic id. A topic
named twice in one request fails with INVALID_REQUEST, as in Kafka.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from strom.broker.configs import topic_config_entries
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.broker.topics import create_topic
from strom.errors import ErrorCode, InvalidRequestError, KafkaError
from strom.protocol.api import ApiKey
from strom.protocol.messages import ZERO_UUID


@handles(ApiKey.CREATE_TOPICS)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    broker = ctx.broker
    validate_only = bool(getattr(request, "validate_only", False))
    counts = Counter(t.name for t in request.topics)
    results = []
    for wanted in request.topics:
        result: dict[str, Any] = {
            "name": wanted.name, "topic_id": ZERO_UUID, "error_code": ErrorCode.none,
            "error_message": None, "num_partitions": -1, "replication_factor": -1,
            "configs": [],
        }
        if counts[wanted.name] > 1:
            result.update(error_code=ErrorCode.invalid_request,
                          error_message="Create topics request from client contains "
                          "duplicate topics")
            results.append(result)
            continue
        try:
            if wanted.assignments and (wanted.num_partitions != -1
                                       or wanted.replication_factor != -1):
                raise InvalidRequestError("Both numPartitions or replicationFactor and "
                               "replicasAssignments were set. Both cannot be used at the "
                               "same time.")
            assignments = {a.partition_index: list(a.broker_ids) for a in wanted.assignments}
            configs = {c.name: c.value for c in wanted.configs}
            topic = create_topic(
                broker, wanted.name, wanted.num_partitions, wanted.replication_factor,
                configs, assignments or None, validate_only=validate_only,
            )
            entries = topic_config_entries(broker.config, topic.configs)
            result.update(
                topic_id=ZERO_UUID if validate_only else topic.topic_id,
                num_partitions=len(topic.partitions),
                replication_factor=topic.replication_factor,
                configs=[{k: e[k] for k in ("name", "value", "read_only", "config_source",
                                           "is_sensitive")} for e in entries],
            )
        except KafkaError as exc:
            result.update(error_code=exc.code, error_message=exc.message)
        results.append(result)
    return {"throttle_time": 0, "topics": results}

