"""ElectLeaders: an operator asks the controller for preferred or unclean
leader elections (kafka-leader-election.sh, Admin.electLeaders).

Versions: 0-2. v0 elects preferred leaders only; v1 adds the election type
(0 PREFERRED, 1 UNCLEAN) and a top-level error code; v2 is flexible. Only the
controller answers: elsewhere NOT_CONTROLLER (top level from v1, per
partition in v0), and the client retries against the controller Metadata
names. Each partition is decided as Kafka's controller does
(cluster/elections.py elect_leader): ELECTION_NOT_NEEDED,
PREFERRED_LEADER_NOT_AVAILABLE, ELIGIBLE_LEADERS_NOT_AVAILABLE,
UNKNOWN_TOPIC_OR_PARTITION; the elected ones are committed in one metadata
batch before the answer. A null topic list means every partition, and then
the partitions that need no election are left out of the answer, as in Kafka.
"""

from __future__ import annotations

from typing import Any

from strom.broker.authorization import cluster_allowed
from strom.broker.context import RequestContext
from strom.broker.router import handles
from strom.cluster.elections import PREFERRED, elect_leader
from strom.cluster.image import MetadataImage, MetadataRecord
from strom.cluster.validation import check_records_per_user_op
from strom.errors import ErrorCode, KafkaError, NotControllerError
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation

Result = tuple[int, str | None]  # (error code, message)


@handles(ApiKey.ELECT_LEADERS)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    broker = ctx.broker
    election_type = int(getattr(request, "election_type", PREFERRED))
    every = request.topic_partitions is None
    if not cluster_allowed(ctx, AclOperation.ALTER):
        denied = ErrorCode.cluster_authorization_failed
        return {"throttle_time": 0, "error_code": denied, "replica_election_results": [
            {"topic": t.topic, "partition_result": [
                {"partition_id": int(p), "error_code": denied, "error_message": None}
                for p in t.partitions]} for t in request.topic_partitions or ()]}
    # (topic, partition) -> result; rebuilt each time the operation runs.
    results: dict[str, dict[int, Result]] = {}

    def elect() -> list[MetadataRecord]:
        image = broker.metadata.operations.image
        results.clear()
        records: list[MetadataRecord] = []
        for topic, partition in _asked(image, request):
            answers = results.setdefault(topic, {})
            if partition in answers:
                continue  # named twice: one election
            try:
                records.append(elect_leader(image, topic, partition, election_type))
            except KafkaError as exc:
                if every and exc.code == ErrorCode.election_not_needed:
                    continue
                answers[partition] = (exc.code, exc.message)
            else:
                answers[partition] = (ErrorCode.none, None)
        check_records_per_user_op(len(records))
        return records

    try:
        if broker.image.controller_id != broker.metadata.node_id:
            raise NotControllerError(f"broker {broker.metadata.node_id} is not the controller")
        await broker.metadata.submit(elect)
    except KafkaError as exc:
        if ctx.header.api_version >= 1 or every:
            return {"throttle_time": 0, "error_code": exc.code,
                    "replica_election_results": []}
        results = {t.topic: {int(p): (exc.code, exc.message) for p in t.partitions}
                   for t in request.topic_partitions}
    return {"throttle_time": 0, "error_code": ErrorCode.none,
            "replica_election_results": [
                {"topic": topic, "partition_result": [
                    {"partition_id": p, "error_code": code, "error_message": message}
                    for p, (code, message) in answers.items()]}
                for topic, answers in results.items()]}


def _asked(image: MetadataImage, request: Any) -> list[tuple[str, int]]:
    if request.topic_partitions is None:
        return [(t.name, p.partition) for t in image.topics.values() for p in t.partitions]
    return [(t.topic, int(p)) for t in request.topic_partitions for p in t.partitions]
