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
group name INVALID_REQUEST.

Share groups (KIP-932) have Kafka 4.4's share.* group configs (see
docs/share-groups.md): share.session.timeout.ms, share.heartbeat.interval.ms,
share.record.lock.duration.ms, share.delivery.count.limit and
share.partition.max.record.locks (ints within the broker's
group.share.min/max.* range), share.auto.offset.reset (latest, earliest or
by_duration:<ISO-8601 duration>), share.isolation.level (read_committed,
read_uncommitted) and share.renew.acknowledge.enable (boolean); a share
group's session timeout must stay above its heartbeat interval.

Streams groups (KIP-1071) have streams.session.timeout.ms,
streams.heartbeat.interval.ms (within group.streams.min/max.*),
streams.num.standby.replicas (0 to group.streams.max.standby.replicas),
streams.task.offset.interval.ms (at least group.streams.min.task.offset.interval.ms) and
streams.initial.rebalance.delay.ms (0 or more), read by
coordinator/group/streams_config.py; a streams group's session timeout must stay
above its heartbeat interval, as Kafka 4.4 checks.
`share_group_settings` gives a share group's effective values (the share
partitions read the lock duration, delivery count limit, record locks,
offset reset and isolation level from it).

The values are GroupConfigRecords in the metadata (metadata.version 12),
so every broker sees them; the group coordinator reads a group's values
(coordinator/group/context.py GroupConfig.session_timeout_ms,
heartbeat_interval_ms) when it answers a heartbeat, capped to the broker's
range as Kafka 4.4 caps them (the range may have changed since).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from strom.config import BrokerConfig, ConfigSource, ConfigType, Value
from strom.errors import InvalidConfigError, InvalidRequestError


@dataclass(frozen=True, slots=True)
class GroupConfigDef:
    name: str
    broker_default: str | None  # the broker config it defaults to (its synonym)
    broker_min: str | None
    broker_max: str | None
    doc: str
    type: ConfigType = ConfigType.INT
    default: Value = None  # without a broker synonym
    choices: tuple[str, ...] = ()  # STRING: the values accepted (ValidString)
    at_least: int = 1  # INT: ConfigDef's atLeast; the range's low end without broker_min


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
    GroupConfigDef("share.session.timeout.ms", "group.share.session.timeout.ms",
                   "group.share.min.session.timeout.ms", "group.share.max.session.timeout.ms",
                   "The timeout to detect client failures when using the share group "
                   "protocol."),
    GroupConfigDef("share.heartbeat.interval.ms", "group.share.heartbeat.interval.ms",
                   "group.share.min.heartbeat.interval.ms",
                   "group.share.max.heartbeat.interval.ms",
                   "The heartbeat interval given to the members of a share group."),
    GroupConfigDef("share.record.lock.duration.ms", "group.share.record.lock.duration.ms",
                   "group.share.min.record.lock.duration.ms",
                   "group.share.max.record.lock.duration.ms",
                   "The record acquisition lock duration in milliseconds for share groups."),
    GroupConfigDef("share.delivery.count.limit", "group.share.delivery.count.limit",
                   "group.share.min.delivery.count.limit",
                   "group.share.max.delivery.count.limit",
                   "The maximum number of delivery attempts for a record delivered to a "
                   "share group."),
    GroupConfigDef("share.partition.max.record.locks", "group.share.partition.max.record.locks",
                   "group.share.min.partition.max.record.locks",
                   "group.share.max.partition.max.record.locks",
                   "Share-group record lock limit per share-partition."),
    GroupConfigDef("share.auto.offset.reset", None, None, None,
                   "The strategy to initialize the share-partition start offset: earliest, "
                   "latest or by_duration:<duration> (ISO8601, PnDTnHnMn.nS; not negative).",
                   ConfigType.STRING, "latest"),
    GroupConfigDef("share.isolation.level", None, None, None,
                   "Controls how to read records written transactionally. If set to "
                   "\"read_committed\", the share group will only deliver transactional "
                   "records which have been committed. If set to \"read_uncommitted\", the "
                   "share group will return all messages, even transactional messages which "
                   "have been aborted. Non-transactional records will be returned "
                   "unconditionally in either mode.",
                   ConfigType.STRING, "read_uncommitted", ("read_committed", "read_uncommitted")),
    GroupConfigDef("share.renew.acknowledge.enable", None, None, None,
                   "Whether the renew acknowledge type is enabled for the share group.",
                   ConfigType.BOOLEAN, True),
    GroupConfigDef("streams.session.timeout.ms", "group.streams.session.timeout.ms",
                   "group.streams.min.session.timeout.ms",
                   "group.streams.max.session.timeout.ms",
                   "The timeout to detect client failures when using the streams group "
                   "protocol."),
    GroupConfigDef("streams.heartbeat.interval.ms", "group.streams.heartbeat.interval.ms",
                   "group.streams.min.heartbeat.interval.ms",
                   "group.streams.max.heartbeat.interval.ms",
                   "The heartbeat interval given to the members."),
    GroupConfigDef("streams.num.standby.replicas", "group.streams.num.standby.replicas",
                   None, "group.streams.max.standby.replicas",
                   "The number of standby replicas for each task.", at_least=0),
    GroupConfigDef("streams.task.offset.interval.ms", "group.streams.task.offset.interval.ms",
                   "group.streams.min.task.offset.interval.ms", None,
                   "The interval in which the warmup task changelog offsets on a client are "
                   "updated on the broker. The offsets are sent with the next heartbeat "
                   "after this time has passed."),
    GroupConfigDef("streams.initial.rebalance.delay.ms",
                   "group.streams.initial.rebalance.delay.ms", None, None,
                   "The amount of time the group coordinator will wait for more streams "
                   "clients to join a new group before performing the first rebalance. A "
                   "longer delay means potentially fewer rebalances.", at_least=0),
)}
#: Kafka's validateSessionExceedsHeartbeat: (session, heartbeat) pairs checked together.
_SESSION_ABOVE_HEARTBEAT = (("share.session.timeout.ms", "share.heartbeat.interval.ms"),
                            ("streams.session.timeout.ms", "streams.heartbeat.interval.ms"))


def check_group_name(name: str) -> None:
    if not name:
        raise InvalidRequestError("Default group resources are not allowed.")


def parse(config: BrokerConfig, name: str, text: str | None) -> Value:
    """A group config's value from its text; raises InvalidConfigError."""
    definition = GROUP_CONFIGS.get(name)
    if definition is None:
        raise InvalidConfigError(f"Unknown group config name: {name}")
    if definition.type is ConfigType.STRING:
        return _parse_string(definition, text)
    if definition.type is ConfigType.BOOLEAN:
        lowered = (text or "").strip().lower()
        if lowered not in ("true", "false"):
            raise InvalidConfigError(f"Invalid value {text} for configuration {name}: "
                                     "Expected value to be either true or false")
        return lowered == "true"
    try:
        value = int(text) if text is not None else None
    except ValueError:
        value = None
    if value is None or not -(2**31) <= value < 2**31:
        raise InvalidConfigError(
            f"Invalid value {text} for configuration {name}: Not a number of type INT")
    if value < definition.at_least:
        raise InvalidConfigError(f"Invalid value {text} for configuration {name}: Value "
                                 f"must be at least {definition.at_least}")
    low, high = _range(config, definition)
    if definition.broker_min is None and definition.broker_max is not None and value > high:
        # Kafka's validateIntMax
        raise InvalidConfigError(f"{name} must be less than or equal to {high}")
    if definition.broker_max is None and definition.broker_min is not None and value < low:
        # Kafka's validateIntMin
        raise InvalidConfigError(f"{name} must be greater than or equal to {low}")
    if not low <= value <= high:
        raise InvalidConfigError(f"{name} must be in the range {low} to {high} inclusive.")
    return value


def validate(config: BrokerConfig, wanted: Mapping[str, str | None]) -> dict[str, Value]:
    """The complete set of a group's configs from their texts (Kafka checks
    the names first, then the values)."""
    for name in wanted:
        if name not in GROUP_CONFIGS:
            raise InvalidConfigError(f"Unknown group config name: {name}")
    parsed = {name: parse(config, name, text) for name, text in wanted.items()}
    for session, heartbeat in _SESSION_ABOVE_HEARTBEAT:
        if (session in parsed or heartbeat in parsed) and (
                _effective_int(config, parsed, session)
                <= _effective_int(config, parsed, heartbeat)):
            raise InvalidConfigError(f"{session} must be greater than {heartbeat}")
    return parsed


def describe_entries(config: BrokerConfig, group_values: Mapping[str, Value],
                     names: set[str] | None) -> list[dict[str, Any]]:
    """DescribeConfigs entries for one group, in Kafka's shape: its own value
    (GROUP_CONFIG) or the broker's (DEFAULT_CONFIG), the broker config as
    synonym."""
    entries = []
    for name, definition in GROUP_CONFIGS.items():
        if names is not None and name not in names:
            continue
        synonyms = []
        if definition.broker_default is not None:
            default_text = _text(config.get(definition.broker_default))
            synonyms.append({"name": definition.broker_default, "value": default_text,
                             "source": int(ConfigSource.DEFAULT_CONFIG)})
        else:
            default_text = _text(definition.default)
        own = group_values.get(name)
        if own is not None:
            synonyms.insert(0, {"name": name, "value": _text(own),
                                "source": GROUP_CONFIG_SOURCE})
        source = int(ConfigSource.DEFAULT_CONFIG) if own is None else GROUP_CONFIG_SOURCE
        entries.append({
            "name": name, "value": default_text if own is None else _text(own),
            "read_only": False, "config_source": source,
            "is_default": own is None, "is_sensitive": False, "synonyms": synonyms,
            "config_type": int(definition.type), "documentation": definition.doc})
    return entries


@dataclass(frozen=True, slots=True)
class ShareGroupSettings:
    """A share group's effective share.* values: its own, else the broker's."""

    session_timeout_ms: int
    heartbeat_interval_ms: int
    record_lock_duration_ms: int
    delivery_count_limit: int
    partition_max_record_locks: int
    auto_offset_reset: str  # "latest", "earliest" or "by_duration:<ISO-8601>"
    isolation_level: str  # "read_uncommitted" or "read_committed"
    renew_acknowledge_enable: bool

    @property
    def read_committed(self) -> bool:
        return self.isolation_level == "read_committed"

    @property
    def reset_by_duration_ms(self) -> int | None:
        """by_duration's duration in ms (reset to the records of the last that long),
        None for latest and earliest."""
        if not self.auto_offset_reset.startswith("by_duration:"):
            return None
        return parse_duration_ms(self.auto_offset_reset[len("by_duration:"):])


def share_group_settings(config: BrokerConfig, group_values: Mapping[str, Value]
                         ) -> ShareGroupSettings:
    """`group_values`: the group's own configs (the metadata image's group_configs of
    the group). A value set before the broker's range changed is used as set, as
    Kafka's GroupConfigManager does for these (the heartbeat ones are capped by the
    group coordinator)."""
    def num(name: str) -> int:
        return _effective_int(config, group_values, name)

    def text(name: str) -> str:
        value = group_values.get(name)
        return str(value if value is not None else GROUP_CONFIGS[name].default)

    renew = group_values.get("share.renew.acknowledge.enable")
    return ShareGroupSettings(
        num("share.session.timeout.ms"), num("share.heartbeat.interval.ms"),
        num("share.record.lock.duration.ms"), num("share.delivery.count.limit"),
        num("share.partition.max.record.locks"), text("share.auto.offset.reset").lower(),
        text("share.isolation.level"), True if renew is None else bool(renew))


# Java's Duration.parse (PnDTnHnMn.nS), which Kafka's by_duration uses.
_DURATION = re.compile(
    r"([-+]?)P(?:([-+]?[0-9]+)D)?(T(?:([-+]?[0-9]+)H)?(?:([-+]?[0-9]+)M)?"
    r"(?:([-+]?[0-9]+)(?:[.,]([0-9]{0,9}))?S)?)?", re.IGNORECASE)


def parse_duration_ms(text: str) -> int:
    """An ISO-8601 duration in ms; ValueError if malformed or negative."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or match.group(3) == "T" or not any(
            match.group(i) for i in (2, 4, 5, 6)):
        raise ValueError(f"Unable to parse duration {text!r}")
    sign, days, _, hours, minutes, seconds, fraction = match.groups()
    ms = (int(days or 0) * 86_400_000 + int(hours or 0) * 3_600_000
          + int(minutes or 0) * 60_000 + int(seconds or 0) * 1000)
    if fraction:
        frac_ms = int((fraction + "000")[:3])
        ms += -frac_ms if (seconds or "").startswith("-") else frac_ms
    if sign == "-":
        ms = -ms
    if ms < 0:
        raise ValueError("Negative duration is not supported")
    return ms


def _parse_string(definition: GroupConfigDef, text: str | None) -> str:
    name = definition.name
    value = (text or "").strip()
    if definition.choices:
        if value not in definition.choices:
            raise InvalidConfigError(
                f"Invalid value {text} for configuration {name}: String must be one of: "
                f"{', '.join(definition.choices)}")
        return value
    # share.auto.offset.reset (Kafka's ShareGroupAutoOffsetResetStrategy.Validator)
    lowered = value.lower()
    ok = lowered in ("earliest", "latest")
    if lowered.startswith("by_duration:"):
        try:
            parse_duration_ms(value[len("by_duration:"):])
            ok = True
        except ValueError:
            ok = False
    if not ok:
        raise InvalidConfigError(
            f"Invalid value {text} for configuration {name}: Invalid value `{text}` for "
            f"configuration {name}. The value must be either 'earliest', 'latest' or of the "
            "format 'by_duration:<PnDTnHnMn.nS>'.")
    # Kept with the strategy in lower case (Kafka reads it case-insensitively), so the
    # share partitions compare it as is.
    return lowered if not lowered.startswith("by_duration:") else (
        "by_duration:" + value[len("by_duration:"):])


def _text(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _effective_int(config: BrokerConfig, values: Mapping[str, Value], name: str) -> int:
    own = values.get(name)
    if isinstance(own, int) and not isinstance(own, bool):
        return own
    broker = GROUP_CONFIGS[name].broker_default
    assert broker is not None, name
    return _int(config, broker)


def _range(config: BrokerConfig, definition: GroupConfigDef) -> tuple[int, int]:
    low = (definition.at_least if definition.broker_min is None
           else _int(config, definition.broker_min))
    high = 2**31 - 1 if definition.broker_max is None else _int(config, definition.broker_max)
    return low, high


def _int(config: BrokerConfig, name: str) -> int:
    value = config.get(name)
    assert isinstance(value, int), name
    return value
