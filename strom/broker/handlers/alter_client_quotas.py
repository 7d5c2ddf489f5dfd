"""AlterClientQuotas: set or remove client quotas of entities.

Versions: 0-1. Each entry names an entity ((type, name) pairs, name null for
the type's default) and operations (a key and a value, or remove); entries
succeed or fail on their own, as in Kafka's controller
(ClientQuotaControlManager): an entity Kafka refuses, an unknown key for its
entity types, or a value not above 0 (or fractional for a byte rate) fails
that entry with INVALID_REQUEST and changes none of its keys; an operation
named twice counts once, the last. validate_only checks and changes nothing.
Only changed values are written, as ClientQuotaRecords, one metadata
operation for the request. A broker that is not the controller forwards the
request to it (KIP-590). Needs ALTER_CONFIGS on the cluster (else every entry
fails with CLUSTER_AUTHORIZATION_FAILED).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from strom.broker.context import RequestContext
from strom.broker.forwarding import forwarded_to_controller
from strom.broker.router import handles
from strom.cluster.image import ClientQuotaRecord, MetadataImage, MetadataRecord, QuotaEntity
from strom.errors import ErrorCode, KafkaError
from strom.protocol.api import ApiKey
from strom.security.acl_types import CLUSTER_NAME, AclOperation, ResourceType
from strom.security.quotas import check_entity, check_value, entity_of


@handles(ApiKey.ALTER_CLIENT_QUOTAS)
@forwarded_to_controller
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    if not ctx.authorize(AclOperation.ALTER_CONFIGS, ResourceType.CLUSTER, CLUSTER_NAME):
        return _all_failed(request, ErrorCode.cluster_authorization_failed,
                           "Cluster authorization failed.")
    results: list[dict[str, Any]] = []

    def operation() -> Sequence[MetadataRecord]:
        # Run against the newest image (again, should it change before the
        # commit): only values that differ from it become records.
        results.clear()
        return alter_records(ctx.broker.image, request.entries, results)

    try:
        if request.validate_only:
            operation()
        else:
            await ctx.broker.metadata.submit(operation)
    except KafkaError as exc:
        return _all_failed(request, exc.code, exc.message)
    return {"throttle_time": 0, "entries": results}


def alter_records(image: MetadataImage, entries: Any, results: list[dict[str, Any]]
                  ) -> list[MetadataRecord]:
    """The records of every valid entry; one result per entry, in order."""
    records: list[MetadataRecord] = []
    for entry in entries:
        result: dict[str, Any] = {
            "error_code": ErrorCode.none, "error_message": None,
            "entity": [{"entity_type": e.entity_type, "entity_name": e.entity_name}
                       for e in entry.entity]}
        results.append(result)
        try:
            records += _entry_records(image, entry)
        except KafkaError as exc:
            result.update(error_code=exc.code, error_message=exc.message)
    return records


def _entry_records(image: MetadataImage, entry: Any) -> list[MetadataRecord]:
    # As Kafka's request parsing: a type named twice keeps its last name, a key its last op.
    parts = {e.entity_type: e.entity_name for e in entry.entity}
    wanted = {op.key: None if op.remove else float(op.value) for op in entry.ops}
    keys = check_entity(parts)
    entity: QuotaEntity = entity_of(parts)
    current = image.client_quotas.get(entity, {})
    records: list[MetadataRecord] = []
    for key, value in wanted.items():
        if value is None:
            if key in current:
                records.append(ClientQuotaRecord(entity, key, None))
        else:
            check_value(keys, key, value)
            if current.get(key) != value:
                records.append(ClientQuotaRecord(entity, key, value))
    return records


def _all_failed(request: Any, code: ErrorCode, message: str | None) -> dict[str, Any]:
    return {"throttle_time": 0, "entries": [
        {"error_code": code, "error_message": message,
         "entity": [{"entity_type": e.entity_type, "entity_name": e.entity_name}
                    for e in entry.entity]} for entry in request.entries]}
