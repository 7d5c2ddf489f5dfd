"""DescribeConfigs: the configs of topics, this broker, and its loggers.

Versions: 1-4. TOPIC (2) lists every topic config with its effective value
and source (a topic override, a broker setting, or the default); BROKER (4)
named by this broker's id lists every broker config, named "" only the
dynamic cluster-wide defaults, as Kafka does; BROKER_LOGGER (8) lists the
process's Python loggers with their effective levels in Kafka's level names.
configuration_keys (null or empty: all) filters the entries; synonyms and
documentation are sent only when asked for. Unknown topics get
UNKNOWN_TOPIC_OR_PARTITION; another broker's id, a non-numeric broker name
and unsupported resource types get INVALID_REQUEST with Kafka's messages.
"""

from __future__ import annotations

import logging
from typing import Any

from strom.broker.authorization import check_config_resource
from strom.broker.configs import broker_config_entries, topic_config_entries
from strom.broker.context import BrokerServices, RequestContext
from strom.broker.handlers.alter_configs import (
    BROKER,
    BROKER_LOGGER,
    GROUP,
    TOPIC,
    resource_type_name,
)
from strom.broker.router import handles
from strom.cluster.validation import validate_topic_name
from strom.config import BROKER_CONFIGS, ConfigSource
from strom.errors import (
    ErrorCode,
    InvalidRequestError,
    KafkaError,
    UnknownTopicOrPartitionError,
)
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation

ROOT_LOGGER = "root"
# Python's level names as log4j spells them; TRACE has no Python level of its own.
KAFKA_LEVELS = {"TRACE": 5, "DEBUG": logging.DEBUG, "INFO": logging.INFO,
                "WARN": logging.WARNING, "ERROR": logging.ERROR, "FATAL": logging.CRITICAL}


def kafka_level_name(level: int) -> str:
    for name, value in sorted(KAFKA_LEVELS.items(), key=lambda item: -item[1]):
        if level >= value:
            return name
    return "TRACE"


def python_loggers() -> dict[str, logging.Logger]:
    """Every logger of the process by its Kafka name ("root" for the root logger)."""
    loggers = {ROOT_LOGGER: logging.getLogger()}
    for name, logger in logging.Logger.manager.loggerDict.items():
        if isinstance(logger, logging.Logger):
            loggers[name] = logger
    return loggers


def _logger_entries() -> list[dict[str, Any]]:
    return [
        {"name": name, "value": kafka_level_name(logger.getEffectiveLevel()),
         "read_only": False, "config_source": int(ConfigSource.DYNAMIC_BROKER_LOGGER_CONFIG),
         "is_sensitive": False, "synonyms": [], "config_type": 0, "documentation": None}
        for name, logger in sorted(python_loggers().items())
    ]


def _unknown_dynamic_entry(name: str) -> dict[str, Any]:
    # A custom config Kafka cannot type is reported as sensitive, to be safe.
    return {"name": name, "value": None, "read_only": True,
            "config_source": int(ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG),
            "is_sensitive": True, "synonyms": [], "config_type": 0, "documentation": None}


def _node_id(name: str) -> int:
    try:
        return int(name)
    except ValueError:
        raise InvalidRequestError(f"Broker id must be an integer, but it is: {name}") from None


def _describe(broker: BrokerServices, resource: Any) -> list[dict[str, Any]]:
    keys = resource.configuration_keys
    names = set(keys) if keys else None
    name = resource.resource_name
    if resource.resource_type == TOPIC:
        validate_topic_name(name)
        topic = broker.image.topics.get(name)
        if topic is None:
            raise UnknownTopicOrPartitionError()  # Kafka sends no message
        return topic_config_entries(broker.config, topic.configs, names)
    if resource.resource_type == BROKER:
        if name == "":
            dynamic = set(broker.config.dynamic)
            wanted = dynamic if names is None else dynamic & names
            entries = broker_config_entries(broker.config, wanted)
            for config in sorted(wanted - set(BROKER_CONFIGS)):
                entries.append(_unknown_dynamic_entry(config))
            for entry in entries:
                # The cluster default has no per-broker layer to report.
                entry["synonyms"] = [s for s in entry["synonyms"] if s["source"] !=
                                     ConfigSource.DYNAMIC_BROKER_CONFIG]
            return entries
        if _node_id(name) != broker.node_id:
            raise InvalidRequestError(
                f"Unexpected broker id, expected {broker.node_id} or empty string, "
                f"but received {name}"
            )
        return broker_config_entries(broker.config, names)
    if resource.resource_type == BROKER_LOGGER:
        if name == "":
            raise InvalidRequestError("Broker id must not be empty")
        if _node_id(name) != broker.node_id:
            raise InvalidRequestError(
                f"Unexpected broker id, expected {broker.node_id} but received {name}"
            )
        return [e for e in _logger_entries() if names is None or e["name"] in names]
    if resource.resource_type == GROUP:
        if name == "":
            raise InvalidRequestError("Group name must not be empty")
        # Loaded by the first request about a group's configs (alter_configs.py).
        from strom.broker import group_configs

        return group_configs.describe_entries(
            broker.config, broker.image.group_configs.get(name, {}), names)
    raise InvalidRequestError(
        f"Unsupported resource type: {resource_type_name(resource.resource_type)}"
    )


@handles(ApiKey.DESCRIBE_CONFIGS)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    include_synonyms = bool(getattr(request, "include_synonyms", False))
    include_documentation = bool(getattr(request, "include_documentation", False))
    results = []
    for resource in request.resources:
        result: dict[str, Any] = {
            "error_code": ErrorCode.none, "error_message": None,
            "resource_type": resource.resource_type, "resource_name": resource.resource_name,
            "configs": [],
        }
        try:
            check_config_resource(ctx, AclOperation.DESCRIBE_CONFIGS, resource.resource_type,
                                  resource.resource_name)
            entries = _describe(ctx.broker, resource)
        except KafkaError as exc:
            result.update(error_code=exc.code, error_message=exc.message)
            results.append(result)
            continue
        for entry in entries:
            if not include_synonyms:
                entry["synonyms"] = []
            if not include_documentation:
                entry["documentation"] = None
        result["configs"] = entries
        results.append(result)
    return {"throttle_time": 0, "results": results}
