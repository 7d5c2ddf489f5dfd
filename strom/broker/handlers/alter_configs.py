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

A BROKER resource named "" changes the cluster-wide defaults
(DYNAMIC_DEFAULT_BROKER_CONFIG), one named by a node id that broker's own
configs (DYNAMIC_BROKER_CONFIG), over the defaults; every broker applies
what its metadata image says (broker/dynamic_configs.py).

In a cluster, a broker that is not the controller checks each resource as
Kafka's ConfigAdminManager.preprocess does (duplicates, nulls, a BROKER
resource's name and values, BROKER_LOGGER changed here) and forwards the
rest to the controller in one request (broker/forwarding.py); the
controller takes a forwarded BROKER resource named by any node id, since
the forwarding broker checked it named itself. The response lists every
resource in request order and is sent once this broker's image shows the
changes. The helpers below are shared with IncrementalAlterConfigs.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from strom.broker.authorization import check_config_resource
from strom.broker.context import BrokerServices, RequestContext
from strom.broker.router import Response, handles
from strom.broker.static_broker_configs import read_only
from strom.cluster.image import GroupConfigRecord, MetadataImage, MetadataRecord
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
from strom.security.acl_types import AclOperation

TOPIC, BROKER, BROKER_LOGGER, GROUP = 2, 4, 8, 32
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
                          validate_only: bool) -> Mapping[str, Value]:
    """Make `wanted` the topic's complete set of overrides (returned, parsed);
    raises KafkaErrors."""
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
    return parsed


# --- groups ------------------------------------------------------------------


async def replace_group_configs(broker: BrokerServices, name: str,
                                wanted: Mapping[str, str | None], validate_only: bool
                                ) -> Mapping[str, Value]:
    """Make `wanted` a group's complete set of configs (returned, parsed;
    broker/group_configs.py); raises KafkaErrors. The group need not exist,
    as in Kafka."""
    # The group configs' definitions load with the first request about a
    # group's configs, not with the handlers at start (issue 19).
    from strom.broker import group_configs

    group_configs.check_group_name(name)
    parsed = group_configs.validate(broker.config, wanted)
    current = broker.image.group_configs.get(name, {})
    changes: dict[str, Value] = {k: v for k, v in parsed.items() if current.get(k) != v}
    changes.update({k: None for k in current if k not in parsed})
    records: list[MetadataRecord] = [GroupConfigRecord(name, k, v)
                                     for k, v in sorted(changes.items())]
    if not validate_only and records:
        await broker.metadata.commit(records)
    return parsed


def group_configs_as_text(broker: BrokerServices, name: str) -> dict[str, str]:
    return {k: str(v) for k, v in broker.image.group_configs.get(name, {}).items()}


# --- brokers -----------------------------------------------------------------


def check_broker_name(broker: BrokerServices, name: str, forwarded: bool = False
                      ) -> int | None:
    """The node a BROKER resource names: None for "" (the cluster default).
    A client may name only the broker it asks (Kafka's ConfigAdminManager); a
    forwarded request any broker (Kafka's ControllerConfigurationValidator)."""
    if name == "":
        return None
    if forwarded:
        try:
            node_id = int(name)
        except ValueError:
            raise InvalidRequestError(
                "Unable to parse broker name as a base 10 number.") from None
        if node_id < 0:
            raise InvalidRequestError("Invalid negative broker ID.")
        return node_id
    try:
        node_id = int(name)
    except ValueError:
        raise InvalidRequestError(f"Node id must be an integer, but it is: {name}") from None
    if node_id != broker.node_id:
        raise InvalidRequestError(
            f"Unexpected node id. Expected {broker.node_id}, but received {name}"
        )
    return node_id


def _broker_dynamic(image: MetadataImage, node_id: int | None) -> Mapping[str, Value]:
    return image.broker_configs if node_id is None else image.node_configs.get(node_id, {})


def broker_dynamic_as_text(broker: BrokerServices, node_id: int | None = None
                           ) -> dict[str, str]:
    """The cluster-wide (node_id None) or one broker's dynamic configs, as text."""
    result = {}
    for key, value in _broker_dynamic(broker.image, node_id).items():
        definition = BROKER_CONFIGS.get(key)
        rendered = definition.render(value) if definition else None
        result[key] = rendered if rendered is not None else str(value)
    return result


async def replace_broker_configs(broker: BrokerServices, wanted: Mapping[str, str],
                           validate_only: bool, node_id: int | None = None
                           ) -> Mapping[str, Value]:
    """Make `wanted` the complete set of the cluster-wide (node_id None) or
    one broker's dynamic configs (returned, parsed); raises KafkaErrors.

    Names strom does not know are kept as strings, as Kafka keeps custom
    dynamic broker configs.
    """
    static = sorted(k for k in wanted if read_only(k))
    if static:
        raise InvalidRequestError(
            f"Cannot update these configs dynamically: Set({', '.join(static)})"
        )
    parsed: dict[str, Value] = {}
    for key, text in wanted.items():
        definition = BROKER_CONFIGS.get(key)
        try:
            parsed[key] = definition.parse(text) if definition else text
        except InvalidConfigError as exc:
            # Kafka answers a broker config it cannot apply with INVALID_REQUEST.
            raise InvalidRequestError(exc.message or str(exc)) from None
    current = _broker_dynamic(broker.image, node_id)
    changes: dict[str, Value] = {k: v for k, v in parsed.items() if current.get(k) != v}
    changes.update({k: None for k in current if k not in parsed})
    records = broker.metadata.operations.broker_config_records(changes, node_id)
    if not validate_only and records:
        # Every broker, this one too, applies it from its image (dynamic_configs.py).
        await broker.metadata.commit(records)
    return parsed


# --- the handler -------------------------------------------------------------

#: Changes one resource, validate_only or not; returns the resource's configs
#: as they are once changed (None: nothing a broker's image would show).
Alter = Callable[[Any, bool], Awaitable[Mapping[str, Value] | None]]


async def alter_each(request: Any, alter: Callable[[Any], Awaitable[object]],
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


async def alter_or_forward(ctx: RequestContext, request: Any, alter: Alter,
                           allow_null: bool = False) -> Response:
    """Both alter APIs: handled here on the controller (or a single node);
    elsewhere checked here and committed by the controller (module doc)."""
    broker = ctx.broker
    validate_only = bool(request.validate_only)

    async def alter_here(resource: Any) -> None:
        await alter(resource, validate_only)

    forwarder = broker.forwarder
    if forwarder is None or not forwarder.should_forward(ctx):
        return await alter_each(request, alter_here, allow_null)
    duplicates = duplicate_resources(request.resources)
    results: list[dict[str, Any] | None] = []
    remaining: list[Any] = []
    settles: list[Callable[[MetadataImage], bool] | None] = []
    for resource in request.resources:
        if (resource.resource_type, resource.resource_name) in duplicates:
            results.append(resource_result(resource, ErrorCode.invalid_request,
                                           "Each resource must appear at most once."))
            continue
        try:
            check_config_names_and_values(resource.configs, allow_null=allow_null)
            if resource.resource_type == BROKER_LOGGER:  # this process's loggers
                await alter(resource, validate_only)
                results.append(resource_result(resource))
                continue
            if resource.resource_type == BROKER:
                # Checked here, as Kafka's brokers check their own configs.
                check_broker_name(broker, resource.resource_name)
                final: Mapping[str, Value] | None = await alter(resource, True)
            elif resource.resource_type == TOPIC:
                try:
                    final = await alter(resource, True)
                except KafkaError:
                    final = None  # the controller checks topics, and answers
            elif resource.resource_type == GROUP:
                final = await alter(resource, True)
            else:
                raise InvalidRequestError(
                    f"Unknown resource type {resource_type_name(resource.resource_type)}")
        except KafkaError as exc:
            results.append(resource_result(resource, exc.code, exc.message))
            continue
        results.append(None)
        remaining.append(resource)
        settles.append(None if validate_only or final is None
                       else _shows(broker.image, resource, final))
    if not remaining:
        return {"throttle_time": 0, "responses": results}

    def settled(_: Any, response: Any) -> Callable[[MetadataImage], bool] | None:
        waits = [settle for settle, answer in zip(settles, _answers(response), strict=True)
                 if settle is not None and answer["error_code"] == ErrorCode.none]
        return (lambda image: all(wait(image) for wait in waits)) if waits else None

    async def handle_here(_: RequestContext, rest: Any) -> dict[str, Any]:
        return await alter_each(rest, alter_here, allow_null)

    response = await forwarder.forward(
        ctx, dataclasses.replace(request, resources=tuple(remaining)), handle_here, settled)
    if response is None:
        return None
    answers = iter(_answers(response))
    return {"throttle_time": 0,
            "responses": [next(answers) if r is None else r for r in results]}


def _shows(image: MetadataImage, resource: Any, final: Mapping[str, Value]
           ) -> Callable[[MetadataImage], bool]:
    """Whether an image shows the forwarded change of `resource`: its configs
    are `final`, or changed since `image` (another change came after)."""
    name = resource.resource_name

    def configs(of: MetadataImage) -> dict[str, Value] | None:
        if resource.resource_type == TOPIC:
            topic = of.topics.get(name)
            return None if topic is None else dict(topic.configs)
        if resource.resource_type == GROUP:
            return dict(of.group_configs.get(name, {}))
        return dict(_broker_dynamic(of, None if name == "" else int(name)))

    before, expected = configs(image), dict(final)
    return lambda of: (now := configs(of)) == expected or now != before


def _answers(response: Any) -> list[dict[str, Any]]:
    """The per-resource results of a response, a dict or a kio entity."""
    items = response["responses"] if isinstance(response, Mapping) else response.responses
    return [dict(item) if isinstance(item, Mapping) else
            {"error_code": item.error_code, "error_message": item.error_message,
             "resource_type": item.resource_type, "resource_name": item.resource_name}
            for item in items]


@handles(ApiKey.ALTER_CONFIGS)
async def handle(ctx: RequestContext, request: Any) -> Response:
    broker = ctx.broker

    async def alter(resource: Any, validate_only: bool) -> Mapping[str, Value] | None:
        check_config_resource(ctx, AclOperation.ALTER_CONFIGS, resource.resource_type,
                              resource.resource_name)
        wanted = {c.name: c.value for c in resource.configs}
        if resource.resource_type == TOPIC:
            return await replace_topic_configs(broker, resource.resource_name, wanted,
                                               validate_only)
        if resource.resource_type == BROKER:
            node_id = check_broker_name(broker, resource.resource_name, ctx.forwarded)
            return await replace_broker_configs(broker, wanted, validate_only, node_id)
        if resource.resource_type == BROKER_LOGGER:
            raise InvalidRequestError("AlterConfigs does not support BROKER_LOGGER resources")
        if resource.resource_type == GROUP:
            return await replace_group_configs(broker, resource.resource_name, wanted,
                                               validate_only)
        raise InvalidRequestError(
            f"Unknown resource type {resource_type_name(resource.resource_type)}")

    return await alter_or_forward(ctx, request, alter)
