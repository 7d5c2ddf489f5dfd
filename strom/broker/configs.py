"""Describing configs as Kafka's DescribeConfigs and CreateTopics report them:
every config with its value, source, type, documentation and synonyms."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from strom.broker.static_broker_configs import read_only
from strom.config import (
    BROKER_CONFIGS,
    BROKER_FAMILIES,
    TOPIC_CONFIGS,
    BrokerConfig,
    ConfigSource,
    ConfigType,
    Value,
)


def _entry(name: str, value: str | None, source: ConfigSource, config_type: ConfigType,
           synonyms: list[dict[str, Any]], documentation: str | None, read_only: bool,
           sensitive: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "value": None if sensitive else value,
        "read_only": read_only,
        "config_source": int(source),
        "is_default": source == ConfigSource.DEFAULT_CONFIG,
        "is_sensitive": sensitive,
        "synonyms": synonyms,
        "config_type": int(config_type),
        "documentation": documentation,
    }


def topic_config_entries(broker: BrokerConfig, overrides: Mapping[str, Value],
                         names: set[str] | None = None) -> list[dict[str, Any]]:
    entries = []
    for name, topic_def in TOPIC_CONFIGS.items():
        if names is not None and name not in names:
            continue
        definition = topic_def.definition
        synonyms: list[dict[str, Any]] = []
        default_value, default_source, from_name = broker.topic_default(topic_def)
        if name in overrides:
            value: Value = overrides[name]
            source = ConfigSource.DYNAMIC_TOPIC_CONFIG
            synonyms.append({"name": name, "value": definition.render(value),
                             "source": int(source)})
        else:
            value, source = default_value, default_source
        if from_name is not None:
            synonyms.append({"name": from_name, "value": definition.render(default_value),
                             "source": int(default_source)})
        if topic_def.synonym is not None:
            # The *.ms synonyms default through their hours family (log.retention.hours).
            for candidate in (topic_def.synonym, *BROKER_FAMILIES.get(topic_def.synonym, ())):
                broker_def = BROKER_CONFIGS.get(candidate)
                if broker_def is not None and broker_def.default is not None:
                    synonyms.append({"name": candidate,
                                     "value": broker_def.render(broker_def.default),
                                     "source": int(ConfigSource.DEFAULT_CONFIG)})
                    break
        entries.append(_entry(name, definition.render(value), source, definition.type,
                              synonyms, definition.doc, read_only=False))
    return entries


def broker_config_entries(broker: BrokerConfig, names: set[str] | None = None
                          ) -> list[dict[str, Any]]:
    entries = []
    for name, definition in BROKER_CONFIGS.items():
        if names is not None and name not in names:
            continue
        value = broker.get(name)
        source = broker.source(name)
        # Passwords (ssl.keystore.password, ...) are never answered, in their
        # synonyms either (Kafka answers them null).
        sensitive = definition.type == ConfigType.PASSWORD
        # Every layer that sets it, as Kafka lists them: this broker's own,
        # the cluster default, the static file, then the default.
        synonyms = [{"name": name,
                     "value": None if sensitive else definition.render(layer_value),
                     "source": int(layer)} for layer, layer_value in broker.layers(name)]
        if definition.default is not None:
            synonyms.append({"name": name, "value": definition.render(definition.default),
                             "source": int(ConfigSource.DEFAULT_CONFIG)})
        entries.append(_entry(name, definition.render(value), source, definition.type, synonyms,
                              definition.doc, read_only=read_only(name),
                              sensitive=sensitive))
    return entries
