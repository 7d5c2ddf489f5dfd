"""StreamsGroupHeartbeat: Kafka Streams' group protocol (KIP-1071).

Versions: 0 (Kafka 4.4 also has v1, KIP-1331 topology descriptions, which
strom does not serve). Joining (epoch 0, with the topology), heartbeating,
leaving (-1, -2); the coordinator assigns tasks (coordinator/group/
streams_protocol.py). Internal topics the coordinator finds missing are
created here, as Kafka's broker creates them after the coordinator answered:
with CREATE on the cluster or on every one of them; else none is, and the
MISSING_INTERNAL_TOPICS status adds "Unauthorized to CREATE on topics ...".
"""

from __future__ import annotations

import logging
from typing import Any

from strom.broker.authorization import authorized_names, cluster_allowed
from strom.broker.context import RequestContext
from strom.broker.group_authorization import heartbeat_denied
from strom.broker.router import handles
from strom.broker.topics import create_topic
from strom.cluster.validation import check_partitions_per_request
from strom.errors import ErrorCode, KafkaError
from strom.protocol.api import ApiKey
from strom.protocol.messages import to_millis
from strom.security.acl_types import AclOperation, ResourceType

log = logging.getLogger(__name__)


@handles(ApiKey.STREAMS_GROUP_HEARTBEAT)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    # The streams group's code is the group coordinator's (records, assignors),
    # loaded when it is first needed, not with the handlers at every start
    # (~20 ms; broker/coordinators.py).
    from strom.coordinator.group.streams import TasksTuple, tasks_in
    from strom.coordinator.group.streams_service import error_response
    from strom.coordinator.group.streams_topology import topic_names
    from strom.coordinator.group.streams_validation import StreamsHeartbeat

    topology = _topology(request.topology) if request.topology is not None else None
    denied = heartbeat_denied(ctx, request.group_id,
                              topic_names(topology) if topology is not None else None)
    if denied is not None:
        return error_response(denied, None)
    present = (request.active_tasks is not None, request.standby_tasks is not None,
               request.warmup_tasks is not None)
    owned = (TasksTuple(tasks_in(request.active_tasks), tasks_in(request.standby_tasks),
                        tasks_in(request.warmup_tasks)) if all(present) else None)
    endpoint = request.user_endpoint
    outcome = await ctx.broker.groups.streams.heartbeat(StreamsHeartbeat(
        group_id=request.group_id,
        member_id=request.member_id,
        member_epoch=request.member_epoch,
        endpoint_information_epoch=request.endpoint_information_epoch,
        instance_id=request.instance_id,
        rack_id=request.rack_id,
        rebalance_timeout_ms=to_millis(request.rebalance_timeout),
        topology=topology,
        owned=owned,
        process_id=request.process_id,
        user_endpoint=(endpoint.host, int(endpoint.port)) if endpoint is not None else None,
        client_tags=(tuple((kv.key, kv.value) for kv in request.client_tags)
                     if request.client_tags is not None else None),
        shutdown_application=request.shutdown_application,
        task_offsets=_task_offsets(request.task_offsets),
        task_end_offsets=_task_offsets(request.task_end_offsets),
        client_id=ctx.header.client_id or "",
        client_host=ctx.client_host,
    ), present)
    response = outcome.response
    if outcome.to_create:
        created = [t.name for t in outcome.to_create]
        permitted = (set(created) if cluster_allowed(ctx, AclOperation.CREATE) else
                     authorized_names(ctx, AclOperation.CREATE, ResourceType.TOPIC, created))
        refused = sorted(set(created) - permitted)
        if refused:
            # Kafka creates none of them then, and says so in the status.
            _add_missing_internal_topics(response, "Unauthorized to CREATE on topics "
                                         f"{', '.join(refused)}.")
            return response
        for topic in outcome.to_create:
            try:
                # As the controller checks any CreateTopics: a topology cannot ask for more.
                check_partitions_per_request(topic.partitions)
                await create_topic(ctx.broker, topic.name, topic.partitions,
                                   topic.replication_factor, dict(topic.configs))
                log.info("created internal topic %s (%d partitions) of streams group %s",
                         topic.name, topic.partitions, request.group_id)
            except KafkaError as exc:
                if exc.code != ErrorCode.topic_already_exists:
                    log.warning("could not create internal topic %s of streams group %s: %s",
                                topic.name, request.group_id, exc)
    return response


def _add_missing_internal_topics(response: dict[str, Any], detail: str) -> None:
    """Kafka appends to the MISSING_INTERNAL_TOPICS status the coordinator gave, if any."""
    from strom.coordinator.group.streams_topology import MISSING_INTERNAL_TOPICS

    statuses = response["status"] = list(response["status"] or [])
    for i, status in enumerate(statuses):
        if status["status_code"] == MISSING_INTERNAL_TOPICS:
            statuses[i] = {**status, "status_detail": f"{status['status_detail']}; {detail}"}
            return
    statuses.append({"status_code": MISSING_INTERNAL_TOPICS, "status_detail": detail})


def _task_offsets(offsets: Any) -> tuple[tuple[str, int, int], ...] | None:
    if offsets is None:
        return None
    return tuple((o.subtopology_id, int(o.partition), int(o.offset)) for o in offsets)


def _topic_info(info: Any) -> dict[str, Any]:
    return {"name": info.name, "partitions": int(info.partitions),
            "replication_factor": int(info.replication_factor),
            "topic_configs": [{"key": c.key, "value": c.value} for c in info.topic_configs]}


def _topology(topology: Any) -> dict[str, Any]:
    """The request's topology as a StreamsGroupTopology record's fields."""
    return {"epoch": int(topology.epoch), "subtopologies": [{
        "subtopology_id": sub.subtopology_id,
        "source_topics": list(sub.source_topics),
        "source_topic_regex": list(sub.source_topic_regex),
        "state_changelog_topics": [_topic_info(t) for t in sub.state_changelog_topics],
        "repartition_sink_topics": list(sub.repartition_sink_topics),
        "repartition_source_topics": [_topic_info(t) for t in sub.repartition_source_topics],
        "copartition_groups": [{
            "source_topics": [int(i) for i in g.source_topics],
            "source_topic_regex": [int(i) for i in g.source_topic_regex],
            "repartition_source_topics": [int(i) for i in g.repartition_source_topics],
        } for g in sub.copartition_groups],
    } for sub in topology.subtopologies]}
