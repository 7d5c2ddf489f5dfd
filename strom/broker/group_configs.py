"""Per-group configs (KIP-848): GROUP config resources in DescribeConfigs,
AlterConfigs and IncrementalAlterConfigs.

strom knows the two the consumer group protocol reads, with Kafka 4.4's
names, documentation and checks:

- consumer.session.timeout.ms: default the broker's
  group.consumer.session.timeout.ms; within group.consumer.min/max.session.timeout.ms;
- consumer.heartbeat.interval.ms: default the broker's
  group.consumer.heartbeat.interval.ms; within group.consumer.min/max.heartbeat.interval.ms.

Kafka's messages and codes (probed against Kafka 4.4): an unknown name
INVALID_CONFIG "Unknown group config name: x"; a value that is not an int
or below 1 INVALID_CONFIG as ConfigDef words it; outside the broker's range
INVALID_CONFIG "x must be in the range 45000 to 60000 inclusive."; an empty
group name INVALID_REQUEST. Kafka's share.*, streams.* and other group
configs are unknown here: strom has no share or streams groups to apply
them to.

The values are GroupConfigRecords in the metadata (metadata.version 12),
so every broker sees them; the group coordinator reads a group's values
(coordinator/group/context.py GroupConfig.session_timeout_ms,
heartbeat_interval_ms) when it answers a heartbeat, capped to the broker's
range as Kafka 4.4 caps them (the range may have changed since).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from strom.config import BrokerConfig, ConfigSource, ConfigType, Value
from strom.errors import InvalidConfigError, InvalidRequestError


@dataclass(frozen=True, slots=True)
class GroupConfigDef:
    name: str
    broker_default: str  # the broker config it defaults to (its synonym)
    broker_min: str
    broker_max: str
    doc: str


SESSION_TIMEOUT = "consumer.session.timeout.ms"
HEARTBEAT_INTERVAL = "consumer.heartbeat.interval.ms"
#: Kafka's DescribeConfigsResponse.ConfigSource.GROUP_CONFIG.
GROUP_CONFIG_SOURCE = 8

GROUP_CONFIGS = {d.name: d for d in (
    GroupConfigDef(SESSION_TIMEOUT, "group.consumer.session.timeout.ms",
                   "group.consumer.min.session.timeout.ms",
                   "group.consumer.max.session.timeout.ms",
                   "The timeout to detect client failures when using the consumer group "
                   "protocol."),
    GroupConfigDef(HEARTBEAT_INTERVAL, "group.consumer.heartbeat.interval.ms",
                   "group.consumer.min.heartbeat.interval.ms",
                   "group.consumer.max.heartbeat.interval.ms",
                   "The heartbeat interval given to the members of a consumer group."),
)}


def check_group_name(name: str) -> None:
    if not name:
        raise InvalidRequestError("Default group resources are not allowed.")


def parse(config: BrokerConfig, name: str, text: str | None) -> int:
    """A group config's value from its text; raises InvalidConfigError."""
    definition = GROUP_CONFIGS.get(name)
    if definition is None:
        raise InvalidConfigError(f"Unknown group config name: {name}")
    try:
        value = int(text) if text is not None else None
    except ValueError:
        value = None
    if value is None or not -(2**31) <= value < 2**31:
        raise InvalidConfigError(
            f"Invalid value {text} for configuration {name}: Not a number of type INT")
    if value < 1:
        raise InvalidConfigError(
            f"Invalid value {text} for configuration {name}: Value must be at least 1")
    low, high = _range(config, definition)
    if not low <= value <= high:
        raise InvalidConfigError(f"{name} must be in the range {low} to {high} inclusive.")
    return value


def validate(config: BrokerConfig, wanted: Mapping[str, str | None]) -> dict[str, Value]:
    """The complete set of a group's configs from their texts (Kafka checks
    the names first, then the values)."""
    for name in wanted:
        if name not in GROUP_CONFIGS:
            raise InvalidConfigError(f"Unknown group config name: {name}")
    return {name: parse(config, name, text) for name, text in wanted.items()}


def describe_entries(config: BrokerConfig, group_values: Mapping[str, Value],
                     names: set[str] | None) -> list[dict[str, Any]]:
    """DescribeConfigs entries for one group, in Kafka's shape: its own value
    (GROUP_CONFIG) or the broker's (DEFAULT_CONFIG), the broker config as
    synonym."""
    entries = []
    for name, definition in GROUP_CONFIGS.items():
        if names is not None and name not in names:
            continue
        broker_value = str(_int(config, definition.broker_default))
        synonyms = [{"name": definition.broker_default, "value": broker_value,
                     "source": int(ConfigSource.DEFAULT_CONFIG)}]
        own = group_values.get(name)
        if own is not None:
            synonyms.insert(0, {"name": name, "value": str(own),
                                "source": GROUP_CONFIG_SOURCE})
        source = int(ConfigSource.DEFAULT_CONFIG) if own is None else GROUP_CONFIG_SOURCE
        entries.append({
            "name": name, "value": broker_value if own is None else str(own),
            "read_only": False, "config_source": source,
            "is_default": own is None, "is_sensitive": False, "synonyms": synonyms,
            "config_type": int(ConfigType.INT), "documentation": definition.doc})
    return entries


def _range(config: BrokerConfig, definition: GroupConfigDef) -> tuple[int, int]:
    return _int(config, definition.broker_min), _int(config, definition.broker_max)


def _int(config: BrokerConfig, name: str) -> int:
    value = config.get(name)
    assert isinstance(value, int), name
    return value
