"""IncrementalAlterConfigs: change configs one operation at a time.

Versions: 0-1. Operations: SET (0) a value, DELETE (1) an override (back to
the default), APPEND (2) / SUBTRACT (3) items of a list config such as
cleanup.policy (starting from the default when there is no override).
TOPIC and BROKER resources behave and fail as in AlterConfigs (see
alter_configs.py), except that configs not named keep their values; APPEND
or SUBTRACT on a config that is not a list fails with INVALID_CONFIG for
topics and INVALID_REQUEST for brokers, as in Kafka. BROKER_LOGGER (8),
named by this broker's id, sets (SET) or resets (DELETE) the level of one of
the process's loggers; the root logger cannot be reset. validate_only checks
everything and changes nothing. A broker that is not the controller
forwards TOPIC and BROKER resources to it (see alter_configs.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from strom.broker.authorization import check_config_resource
from strom.broker.context import BrokerServices, RequestContext
from strom.broker.handlers.alter_configs import (
    BROKER,
    BROKER_LOGGER,
    GROUP,
    TOPIC,
    alter_or_forward,
    broker_dynamic_as_text,
    check_broker_name,
    group_configs_as_text,
    replace_broker_configs,
    replace_group_configs,
    replace_topic_configs,
    resource_type_name,
    topic_overrides_as_text,
)
from strom.broker.handlers.describe_configs import KAFKA_LEVELS, ROOT_LOGGER, python_loggers
from strom.broker.router import Response, handles
from strom.config import BROKER_CONFIGS, TOPIC_CONFIGS, ConfigType, Value
from strom.errors import InvalidConfigError, InvalidRequestError
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
OPERATION_NAMES = {SET: "SET", DELETE: "DELETE", APPEND: "APPEND", SUBTRACT: "SUBTRACT"}


def _items(text: str | None) -> list[str]:
    return [item for item in (text or "").split(",") if item]


def _apply(current: dict[str, str], op: Any, default: str | None) -> None:
    """One SET/DELETE/APPEND/SUBTRACT on `current`, a config set as strings."""
    if op.config_operation == SET:
        current[op.name] = op.value
    elif op.config_operation == DELETE:
        current.pop(op.name, None)
    else:
        items = _items(current.get(op.name, default))
        if op.config_operation == APPEND:
            items += [item for item in _items(op.value) if item not in items]
        else:
            items = [item for item in items if item not in _items(op.value)]
        current[op.name] = ",".join(items)


def _check_operation(op: Any) -> None:
    if op.config_operation not in OPERATION_NAMES:
        raise InvalidRequestError(f"Unknown operation type {op.config_operation}")


async def _alter_topic(broker: BrokerServices, resource: Any, validate_only: bool
                       ) -> Mapping[str, Value]:
    wanted = topic_overrides_as_text(broker, resource.resource_name)
    for op in resource.configs:
        _check_operation(op)
        default = None
        if op.config_operation in (APPEND, SUBTRACT):
            definition = TOPIC_CONFIGS.get(op.name)
            if definition is None or definition.definition.type != ConfigType.LIST:
                raise InvalidConfigError(
                    f"Can't {OPERATION_NAMES[op.config_operation]} to key {op.name} because "
                    "its type is not LIST."
                )
            default = definition.definition.render(definition.definition.default)
        _apply(wanted, op, default)
    return await replace_topic_configs(broker, resource.resource_name, wanted, validate_only)


async def _alter_group(broker: BrokerServices, resource: Any, validate_only: bool
                       ) -> Mapping[str, Value]:
    wanted = group_configs_as_text(broker, resource.resource_name)
    for op in resource.configs:
        _check_operation(op)
        if op.config_operation in (APPEND, SUBTRACT):  # no group config is a list
            raise InvalidConfigError(f"Can't {OPERATION_NAMES[op.config_operation]} to key "
                                     f"{op.name} because its type is not LIST.")
        _apply(wanted, op, None)
    return await replace_group_configs(broker, resource.resource_name, wanted, validate_only)


async def _alter_broker(broker: BrokerServices, resource: Any, validate_only: bool,
                        forwarded: bool) -> Mapping[str, Value]:
    node_id = check_broker_name(broker, resource.resource_name, forwarded)
    wanted = broker_dynamic_as_text(broker, node_id)
    for op in resource.configs:
        _check_operation(op)
        default = None
        if op.config_operation in (APPEND, SUBTRACT):
            definition = BROKER_CONFIGS.get(op.name)
            if definition is None or definition.type != ConfigType.LIST:
                verb = "append" if op.config_operation == APPEND else "subtract"
                raise InvalidRequestError(
                    f"Config value {verb} is not allowed for config key: {op.name}"
                )
            default = definition.render(definition.default)
        _apply(wanted, op, default)
    return await replace_broker_configs(broker, wanted, validate_only, node_id)


async def _alter_loggers(broker: BrokerServices, resource: Any, validate_only: bool) -> None:
    """Kafka's ConfigAdminManager.validateLogLevelConfigs, then the change."""
    name = resource.resource_name
    if name == "":
        raise InvalidRequestError("Node id must be an integer, but it is: ")
    check_broker_name(broker, name)
    loggers = python_loggers()
    for op in resource.configs:
        kind = OPERATION_NAMES.get(op.config_operation)
        if kind in ("SET", "DELETE") and op.name not in loggers:
            raise InvalidConfigError(f"Logger {op.name} does not exist!")
        if kind == "SET" and op.value not in KAFKA_LEVELS:
            raise InvalidConfigError(
                f"Cannot set the log level of {op.name} to {op.value} as it is not a "
                f"supported log level. Valid log levels are {', '.join(KAFKA_LEVELS)}"
            )
        if kind == "DELETE" and op.name == ROOT_LOGGER:
            raise InvalidRequestError(
                f"Removing the log level of the {ROOT_LOGGER} logger is not allowed")
        if kind in ("APPEND", "SUBTRACT"):
            raise InvalidRequestError(
                f"{kind} operation is not allowed for the BROKER_LOGGER resource")
        if kind is None:
            raise InvalidRequestError(f"Unknown operation type {op.config_operation} is not "
                                      "allowed for the BROKER_LOGGER resource")
    if validate_only:
        return
    for op in resource.configs:
        logger = loggers[op.name]
        logger.setLevel(KAFKA_LEVELS[op.value] if op.config_operation == SET
                        else logging.NOTSET)


@handles(ApiKey.INCREMENTAL_ALTER_CONFIGS)
async def handle(ctx: RequestContext, request: Any) -> Response:
    broker = ctx.broker

    async def alter(resource: Any, validate_only: bool) -> Mapping[str, Value] | None:
        check_config_resource(ctx, AclOperation.ALTER_CONFIGS, resource.resource_type,
                              resource.resource_name)
        if resource.resource_type == TOPIC:
            return await _alter_topic(broker, resource, validate_only)
        if resource.resource_type == BROKER:
            return await _alter_broker(broker, resource, validate_only, ctx.forwarded)
        if resource.resource_type == BROKER_LOGGER:
            await _alter_loggers(broker, resource, validate_only)
            return None
        if resource.resource_type == GROUP:
            return await _alter_group(broker, resource, validate_only)
        raise InvalidRequestError(
            f"Unknown resource type {resource_type_name(resource.resource_type)}")

    return await alter_or_forward(ctx, request, alter, allow_null=True)
