"""AlterConfigs (legacy): replace the whole set of a resource's dynamic configs.

Versions: 0-2. A TOPIC resource's overrides become exactly the given set
(overrides not named are removed); a BROKER resource, named "" (the cluster
default) or by this broker's id, has its dynamic broker configs replaced the
same way. validate_only checks everything and changes nothing.

Errors, with Kafka's messages: a resource named twice, a config named twice
or a null value fail with INVALID_REQUEST; invalid topic config values or
names with INVALID_CONFIG; an unknown topic with UNKNOWN_TOPIC_OR_PARTITION.
Broker configs fail as in Kafka's DynamicBrokerConfig: configs that cannot
change at runtime (read-only) and invalid values give INVALID_REQUEST
(Kafka's KAFKA-13609 keeps that code). BROKER_LOGGER is not supported here
(IncrementalAlterConfigs changes log levels).

strom keeps one set of dynamic broker configs: a change addressed to this
broker's id lands in the cluster-wide defaults (one node is the cluster).
The helpers below are shared with IncrementalAlterConfigs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from strom.broker.context import BrokerServices, RequestContext
from strom.broker.router import handles
from strom.cluster.validation import validate_topic_name
from strom.config import BROKER_CONFIGS, TOPIC_CONFIGS, Value, parse_topic_configs
from strom.errors import (
    ErrorCode,
    InvalidConfigError,
    InvalidRequestError,
    KafkaError,
    UnknownTopicOrPartitionError,
)
from strom.protocol.api import ApiKey

TOPIC, BROKER, BROKER_LOGGER = 2, 4, 8
RESOURCE_TYPE_NAMES = {2: "TOPIC", 4: "BROKER", 8: "BROKER_LOGGER", 16: "CLIENT_METRICS",
                       32: "GROUP"}


def resource_type_name(resource_type: int) -> str:
    """The name of Kafka's ConfigResource.Type, as its messages print it."""
    return RESOURCE_TYPE_NAMES.get(resource_type, "UNKNOWN")


def resource_result(resource: Any, code: ErrorCode = ErrorCode.none,
                    message: str | None = None) -> dict[str, Any]:
    return {"error_code": code, "error_message": message,
            "resource_type": resource.resource_type, "resource_name": resource.resource_name}


def duplicate_resources(resources: Iterable[Any]) -> set[tuple[int, str]]:
    counts = Counter((r.resource_type, r.resource_name) for r in resources)
    return {key for key, n in counts.items() if n > 1}


def check_config_names_and_values(configs: Iterable[Any], allow_null: bool = False) -> None:
    """Kafka's ConfigAdminManager.preprocess checks, common to both alter APIs."""
    configs = list(configs)
    names = Counter(c.name for c in configs)
    if any(n > 1 for n in names.values()):
        raise InvalidRequestError("Error due to duplicate config keys")
    nulls = [c.name for c in configs if c.value is None and not (
        allow_null and getattr(c, "config_operation", None) == 1)]
    if nulls:
        raise InvalidRequestError("Null value not supported for : " + ", ".join(nulls))


# --- topics ------------------------------------------------------------------


def topic_overrides_as_text(broker: BrokerServices, name: str) -> dict[str, str]:
    """A topic's current overrides, rendered as the strings clients send."""
    topic = broker.image.topics.get(name)
    if topic is None:
        return {}
    return {key: _render_topic(key, value) for key, value in topic.configs.items()}


def _render_topic(key: str, value: Value) -> str:
    definition = TOPIC_CONFIGS.get(key)
    rendered = definition.definition.render(value) if definition else None
    return rendered if rendered is not None else str(value)


async def replace_topic_configs(broker: BrokerServices, name: str, wanted: Mapping[str, str],
                          validate_only: bool) -> None:
    """Make `wanted` the topic's complete set of overrides; raises KafkaErrors."""
    if not name:
        raise InvalidRequestError("Default topic resources are not allowed.")
    validate_topic_name(name)
    parsed = parse_topic_configs(wanted)
    topic = broker.image.topics.get(name)
    if topic is None:
        raise UnknownTopicOrPartitionError(f"The topic '{name}' does not exist.")
    changes: dict[str, Value] = {k: v for k, v in parsed.items() if topic.configs.get(k) != v}
    changes.update({k: None for k in topic.configs if k not in parsed})
    records = broker.metadata.operations.topic_config_records(name, changes)
    if not validate_only:
        await broker.metadata.commit(records)


# --- brokers -----------------------------------------------------------------


def check_broker_name(broker: BrokerServices, name: str) -> None:
    """"" (the cluster default) or this broker's id, as Kafka's ConfigAdminManager."""
    if name == "":
        return
    try:
        node_id = int(name)
    except ValueError:
        raise InvalidRequestError(f"Node id must be an integer, but it is: {name}") from None
    if node_id != broker.node_id:
        raise InvalidRequestError(
            f"Unexpected node id. Expected {broker.node_id}, but received {name}"
        )


def broker_dynamic_as_text(broker: BrokerServices) -> dict[str, str]:
    result = {}
    for key, value in broker.image.broker_configs.items():
        definition = BROKER_CONFIGS.get(key)
        rendered = definition.render(value) if definition else None
        result[key] = rendered if rendered is not None else str(value)
    return result


async def replace_broker_configs(broker: BrokerServices, wanted: Mapping[str, str],
                           validate_only: bool) -> None:
    """Make `wanted` the complete set of dynamic broker configs; raises KafkaErrors.

    Names strom does not know are kept as strings, as Kafka keeps custom
    dynamic broker configs.
    """
    read_only = sorted(k for k in wanted if k in BROKER_CONFIGS and BROKER_CONFIGS[k].read_only)
    if read_only:
        raise InvalidRequestError(
            f"Cannot update these configs dynamically: Set({', '.join(read_only)})"
        )
    parsed: dict[str, Value] = {}
    for key, text in wanted.items():
        definition = BROKER_CONFIGS.get(key)
        try:
            parsed[key] = definition.parse(text) if definition else text
        except InvalidConfigError as exc:
            # Kafka answers a broker config it cannot apply with INVALID_REQUEST.
            raise InvalidRequestError(exc.message or str(exc)) from None
    current = broker.image.broker_configs
    changes: dict[str, Value] = {k: v for k, v in parsed.items() if current.get(k) != v}
    changes.update({k: None for k in current if k not in parsed})
    records = broker.metadata.operations.broker_config_records(changes)
    if validate_only or not records:
        return
    image = await broker.metadata.commit(records)
    broker.config.dynamic.clear()
    broker.config.dynamic.update(image.broker_configs)
    broker.replicas.refresh_configs(image)


# --- the handler -------------------------------------------------------------


async def alter_each(request: Any, alter: Callable[[Any], Awaitable[None]],
               allow_null: bool = False) -> dict[str, Any]:
    """Both alter APIs' response: `alter` applied to each resource in turn, a
    resource named twice refused, each resource's KafkaError its own result."""
    duplicates = duplicate_resources(request.resources)
    responses = []
    for resource in request.resources:
        if (resource.resource_type, resource.resource_name) in duplicates:
            responses.append(resource_result(resource, ErrorCode.invalid_request,
                                             "Each resource must appear at most once."))
            continue
        try:
            check_config_names_and_values(resource.configs, allow_null=allow_null)
            await alter(resource)
        except KafkaError as exc:
            responses.append(resource_result(resource, exc.code, exc.message))
            continue
        responses.append(resource_result(resource))
    return {"throttle_time": 0, "responses": responses}


@handles(ApiKey.ALTER_CONFIGS)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    broker = ctx.broker
    validate_only = bool(request.validate_only)

    async def alter(resource: Any) -> None:
        wanted = {c.name: c.value for c in resource.configs}
        if resource.resource_type == TOPIC:
            await replace_topic_configs(broker, resource.resource_name, wanted, validate_only)
        elif resource.resource_type == BROKER:
            check_broker_name(broker, resource.resource_name)
            await replace_broker_configs(broker, wanted, validate_only)
        elif resource.resource_type == BROKER_LOGGER:
            raise InvalidRequestError("AlterConfigs does not support BROKER_LOGGER resources")
        else:
            raise InvalidRequestError(
                f"Unknown resource type {resource_type_name(resource.resource_type)}")

    return await alter_each(request, alter)
