"""Broker and topic configuration under Apache Kafka's property names.

A broker config is read from a properties file, then `--override key=value`
flags. Topic configs are per-topic overrides on top of broker defaults; each
topic config names the broker property it falls back to (its synonym), as
Kafka's DescribeConfigs reports it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# The definitions live in config_defs.py; imported here too, where code has
# always found them.
from strom.config_defs import (
    BROKER_CONFIGS,
    DEFAULT_SECURITY_PROTOCOL_MAP,
    LONG_MAX,
    SECURITY_PROTOCOLS,
    TOPIC_CONFIGS,
    ConfigDef,
    ConfigSource,
    ConfigType,
    TopicConfigDef,
    Value,
)
from strom.errors import InvalidConfigError

__all__ = [
    "BROKER_CONFIGS", "BROKER_FAMILIES", "DEFAULT_SECURITY_PROTOCOL_MAP", "LONG_MAX",
    "SECURITY_PROTOCOLS", "TOPIC_CONFIGS", "BrokerConfig",
    "ConfigDef", "ConfigSource", "ConfigType", "TopicConfig", "TopicConfigDef", "Value",
    "parse_properties", "parse_topic_configs",
]


def parse_properties(text: str) -> dict[str, str]:
    """Parse Java properties text (the subset Kafka's config files use)."""
    result: dict[str, str] = {}
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if not line or line[0] in "#!":
            continue
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        for i, ch in enumerate(line):
            if ch in "=:":
                key, value = line[:i].strip(), line[i + 1 :].strip()
                break
        else:
            key, value = line, ""
        result[key] = value
    return result


@dataclass(slots=True)
class BrokerConfig:
    """The broker's configuration: explicit settings over Kafka's defaults."""

    explicit: dict[str, Value] = field(default_factory=dict)
    # Set at runtime through AlterConfigs (cluster-wide defaults, DYNAMIC_DEFAULT_BROKER_CONFIG).
    dynamic: dict[str, Value] = field(default_factory=dict)
    # This broker's own dynamic configs (DYNAMIC_BROKER_CONFIG), over the cluster-wide ones.
    dynamic_broker: dict[str, Value] = field(default_factory=dict)
    # Kafka's per-listener settings, listener.name.<listener>.<setting>, as written
    # (keys as given; the listener part is matched case-insensitively): see
    # listener_get. Settings strom defines are validated at load.
    listener_overrides: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_properties(cls, properties: Mapping[str, str]) -> BrokerConfig:
        explicit: dict[str, Value] = {}
        overrides: dict[str, str] = {}
        for key, text in properties.items():
            if key.startswith(LISTENER_PREFIX):
                _, _, setting = key[len(LISTENER_PREFIX):].partition(".")
                definition = BROKER_CONFIGS.get(setting)
                if definition is not None:
                    definition.parse(text)
                overrides[key] = text
                continue
            definition = BROKER_CONFIGS.get(key)
            if definition is None:
                # Kafka logs and ignores unknown properties; so do we, silently,
                # so that an unchanged Kafka server.properties loads.
                continue
            explicit[key] = definition.parse(text)
        return cls(explicit, listener_overrides=overrides)

    def listener_raw(self, listener: str, setting: str) -> str | None:
        """The text of listener.name.<listener>.<setting>, or None if unset."""
        wanted = f"{listener.lower()}.{setting}"
        for key, text in self.listener_overrides.items():
            if key[len(LISTENER_PREFIX):].lower() == wanted.lower() and key.endswith(setting):
                return text
        return None

    def listener_get(self, listener: str, name: str) -> Value:
        """A broker setting as it applies to one listener: Kafka's
        listener.name.<listener>.<name> when set, else the broker-wide value."""
        text = self.listener_raw(listener, name)
        if text is None:
            return self.get(name)
        return BROKER_CONFIGS[name].parse(text)

    @classmethod
    def load(cls, path: Path | None, overrides: Iterable[str] = ()) -> BrokerConfig:
        properties: dict[str, str] = {}
        if path is not None:
            properties.update(parse_properties(path.read_text()))
        for item in overrides:
            if "=" not in item:
                raise InvalidConfigError(f"--override expects key=value, got {item!r}")
            key, value = item.split("=", 1)
            properties[key.strip()] = value
        return cls.from_properties(properties)

    def get(self, name: str) -> Value:
        if name in self.dynamic_broker:
            return self.dynamic_broker[name]
        if name in self.dynamic:
            return self.dynamic[name]
        if name in self.explicit:
            return self.explicit[name]
        return BROKER_CONFIGS[name].default

    def source(self, name: str) -> ConfigSource:
        if name in self.dynamic_broker:
            return ConfigSource.DYNAMIC_BROKER_CONFIG
        if name in self.dynamic:
            return ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG
        if name in self.explicit:
            return ConfigSource.STATIC_BROKER_CONFIG
        return ConfigSource.DEFAULT_CONFIG

    def layers(self, name: str) -> list[tuple[ConfigSource, Value]]:
        """Every value set for `name`, the one in effect first (Kafka's
        synonyms order), without the default."""
        return [(source, values[name]) for source, values in (
            (ConfigSource.DYNAMIC_BROKER_CONFIG, self.dynamic_broker),
            (ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG, self.dynamic),
            (ConfigSource.STATIC_BROKER_CONFIG, self.explicit)) if name in values]

    def is_set(self, name: str) -> bool:
        return name in self.dynamic_broker or name in self.dynamic or name in self.explicit

    def _int(self, name: str) -> int:
        value = self.get(name)
        assert isinstance(value, int)
        return value

    # Derived settings, resolved the way Kafka resolves its *.ms/*.hours families.

    @property
    def node_id(self) -> int:
        if "node.id" in self.explicit:
            return self._int("node.id")
        return self._int("broker.id")

    @property
    def etcd_endpoints(self) -> list[str]:
        """etcd's client URLs; empty for a single node."""
        endpoints = self.get("strom.metadata.etcd.endpoints")
        return list(endpoints) if isinstance(endpoints, list) else []

    @property
    def broker_session_timeout_ms(self) -> int:
        return self._int("broker.session.timeout.ms")

    @property
    def metadata_snapshot_bytes(self) -> int:
        """metadata.log.max.record.bytes.between.snapshots (docs/cluster.md)."""
        return self._int("metadata.log.max.record.bytes.between.snapshots")

    @property
    def syncfs_max_dirty_bytes(self) -> int:
        """acks=all group commit by syncfs up to this much dirty data (0: off)."""
        return self._int("strom.log.flush.syncfs.max.dirty.bytes")

    @property
    def broker_rack(self) -> str | None:
        rack = self.get("broker.rack")
        return str(rack) if rack else None

    @property
    def log_dirs(self) -> list[Path]:
        dirs = self.get("log.dirs")
        if isinstance(dirs, list) and dirs:
            return [Path(d) for d in dirs]
        return [Path(str(self.get("log.dir")))]

    @property
    def listeners(self) -> list[tuple[str, str, int]]:
        """(name, host, port) per listener."""
        raw = self.get("listeners")
        assert isinstance(raw, list)
        return [_parse_listener(item) for item in raw]

    @property
    def advertised_listeners(self) -> list[tuple[str, str, int]]:
        raw = self.get("advertised.listeners")
        if not raw:
            return self.listeners
        assert isinstance(raw, list)
        return [_parse_listener(item) for item in raw]

    @property
    def listener_security_protocols(self) -> dict[str, str]:
        """listener.security.protocol.map as {listener name: security protocol}."""
        raw = self.get("listener.security.protocol.map")
        mapping: dict[str, str] = {}
        for item in str(raw or "").split(","):
            if not item.strip():
                continue
            name, colon, protocol = item.partition(":")
            name, protocol = name.strip().upper(), protocol.strip().upper()
            if not colon or not name or protocol not in SECURITY_PROTOCOLS:
                raise InvalidConfigError(
                    f"listener.security.protocol.map: cannot parse {item.strip()!r}; expected "
                    f"NAME:PROTOCOL with PROTOCOL one of {', '.join(SECURITY_PROTOCOLS)}")
            if name in mapping:
                raise InvalidConfigError(
                    f"listener.security.protocol.map: listener name {name} appears twice")
            mapping[name] = protocol
        return mapping

    def check_listeners(self) -> None:
        """Refuse, before anything starts, listeners strom cannot serve as
        configured: a listener that asks for TLS or SASL must never quietly
        serve plaintext. Raises InvalidConfigError with a one-line message."""
        protocols = self.listener_security_protocols
        for setting in ("listeners", "advertised.listeners"):
            raw = self.get(setting)
            if not raw:
                continue
            assert isinstance(raw, list)
            for item in raw:
                name, _, _ = _parse_listener(item, setting)
                if name.upper() not in protocols:
                    raise InvalidConfigError(
                        f"{setting}: no security protocol defined for listener {name.upper()} "
                        "(add it to listener.security.protocol.map, e.g. "
                        f"{name.upper()}:PLAINTEXT)")

    @property
    def log_retention_ms(self) -> int:
        for name, factor in (
            ("log.retention.ms", 1),
            ("log.retention.minutes", 60_000),
        ):
            value = self.get(name)
            if value is not None:
                assert isinstance(value, int)
                return value * factor if value >= 0 else -1
        return self._int("log.retention.hours") * 3_600_000

    @property
    def log_roll_ms(self) -> int:
        value = self.get("log.roll.ms")
        if value is not None:
            assert isinstance(value, int)
            return value
        return self._int("log.roll.hours") * 3_600_000

    @property
    def log_roll_jitter_ms(self) -> int:
        value = self.get("log.roll.jitter.ms")
        if value is not None:
            assert isinstance(value, int)
            return value
        return self._int("log.roll.jitter.hours") * 3_600_000

    @property
    def log_flush_interval_ms(self) -> int:
        value = self.get("log.flush.interval.ms")
        if value is not None:
            assert isinstance(value, int)
            return value
        return self._int("log.flush.scheduler.interval.ms")

    def topic_default(self, definition: TopicConfigDef) -> tuple[Value, ConfigSource, str | None]:
        """A topic config's value when the topic does not override it, with its source
        and the broker property it came from."""
        synonym = definition.synonym
        derived: dict[str, Value] = {
            "log.retention.ms": self.log_retention_ms,
            "log.roll.ms": self.log_roll_ms,
            "log.roll.jitter.ms": self.log_roll_jitter_ms,
            "log.flush.interval.ms": self.log_flush_interval_ms,
        }
        if synonym is None:
            return definition.definition.default, ConfigSource.DEFAULT_CONFIG, None
        if self.is_set(synonym):
            return self.get(synonym), self.source(synonym), synonym
        # The hours/minutes families of a *.ms synonym count as set too.
        for family in BROKER_FAMILIES.get(synonym, ()):
            if self.is_set(family):
                return derived[synonym], self.source(family), family
        return definition.definition.default, ConfigSource.DEFAULT_CONFIG, None


BROKER_FAMILIES: dict[str, tuple[str, ...]] = {
    "log.retention.ms": ("log.retention.minutes", "log.retention.hours"),
    "log.roll.ms": ("log.roll.hours",),
    "log.roll.jitter.ms": ("log.roll.jitter.hours",),
}


def _parse_listener(item: str, setting: str = "listeners") -> tuple[str, str, int]:
    """(name, host, port) of NAME://host:port, as Kafka's listenerListToEndPoints
    reads it: an IPv6 host may be bracketed, an empty host is every interface."""
    name, sep, rest = item.strip().partition("://")
    host, colon, port = rest.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if (not sep or not name or not colon or not (port.isascii() and port.isdigit())
            or int(port) > 65535 or not _LISTENER_HOST.fullmatch(host)):
        raise InvalidConfigError(
            f"{setting}: cannot parse {item!r}; expected NAME://host:port with a port "
            "from 0 to 65535, e.g. PLAINTEXT://localhost:9092")
    return name, host or "0.0.0.0", int(port)


#: Kafka's prefix of per-listener settings (ListenerName.configPrefix).
LISTENER_PREFIX = "listener.name."

# Kafka's URI_PARSE_REGEXP host: letters, digits, '-', '%', '.', '_' and ':' (IPv6).
_LISTENER_HOST = re.compile(r"[0-9a-zA-Z\-%._:]*")


@dataclass(frozen=True, slots=True)
class TopicConfig:
    """A topic's effective configuration: its overrides over the broker's defaults."""

    overrides: Mapping[str, Value]
    broker: BrokerConfig

    def get(self, name: str) -> Value:
        if name in self.overrides:
            return self.overrides[name]
        return self.broker.topic_default(TOPIC_CONFIGS[name])[0]

    def int(self, name: str) -> int:
        value = self.get(name)
        assert isinstance(value, int)
        return value

    @property
    def cleanup_policy(self) -> list[str]:
        value = self.get("cleanup.policy")
        assert isinstance(value, list)
        return value


def parse_topic_configs(raw: Mapping[str, str | None]) -> dict[str, Value]:
    """Validate topic-level overrides given as strings; raises InvalidConfigError."""
    parsed: dict[str, Value] = {}
    for name, text in raw.items():
        definition = TOPIC_CONFIGS.get(name)
        if definition is None:
            raise InvalidConfigError(f"Unknown topic config name: {name}")
        if text is None:
            raise InvalidConfigError(f"Null value not supported for topic configs: {name}")
        parsed[name] = definition.definition.parse(text)
    return parsed
