"""What a config definition is: Kafka's config types and sources, how a value
is parsed, bounded, checked and rendered. The definitions themselves are in
config_defs.py (broker and topic) and config_security.py (TLS and SASL).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from strom.errors import InvalidConfigError

LONG_MAX = 9_223_372_036_854_775_807


class ConfigType(enum.IntEnum):
    """DescribeConfigs' config_type values."""

    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7
    CLASS = 8
    PASSWORD = 9


class ConfigSource(enum.IntEnum):
    """DescribeConfigs' config_source values."""

    UNKNOWN = 0
    DYNAMIC_TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5
    DYNAMIC_BROKER_LOGGER_CONFIG = 6


Value = int | float | str | bool | list[str] | None


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError(f"expected true or false, got {text!r}")
    return lowered == "true"


def _parse_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


_PARSERS: dict[ConfigType, Callable[[str], Value]] = {
    ConfigType.BOOLEAN: _parse_bool,
    ConfigType.STRING: str.strip,
    ConfigType.INT: lambda t: int(t.strip()),
    ConfigType.SHORT: lambda t: int(t.strip()),
    ConfigType.LONG: lambda t: int(t.strip()),
    ConfigType.DOUBLE: lambda t: float(t.strip()),
    ConfigType.LIST: _parse_list,
    ConfigType.CLASS: str.strip,
    ConfigType.PASSWORD: str,
}

_RANGES: dict[ConfigType, tuple[int, int]] = {
    ConfigType.INT: (-(2**31), 2**31 - 1),
    ConfigType.SHORT: (-(2**15), 2**15 - 1),
    ConfigType.LONG: (-(2**63), 2**63 - 1),
}


@dataclass(frozen=True, slots=True)
class ConfigDef:
    name: str
    type: ConfigType
    default: Value
    doc: str
    # Smallest legal value for numbers; a tuple of choices for strings/lists.
    at_least: float | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = False
    # Largest legal value for numbers (Kafka's Range.between upper bound).
    at_most: float | None = None
    # Lists only: what every item must match, and the rule a refusal names.
    item_pattern: tuple[str, str] | None = None

    def parse(self, text: str) -> Value:
        """Parse and validate `text`; raises InvalidConfigError."""
        try:
            value = _PARSERS[self.type](text)
            if self.type in _RANGES:
                low, high = _RANGES[self.type]
                if not (isinstance(value, int) and low <= value <= high):
                    raise ValueError(text)
        except ValueError:
            # Kafka's ConfigDef.parseType messages, which clients show verbatim.
            reason = ("Expected value to be either true or false"
                      if self.type == ConfigType.BOOLEAN
                      else f"Not a number of type {self.type.name}")
            raise InvalidConfigError(
                f"Invalid value {text} for configuration {self.name}: {reason}"
            ) from None
        self.validate(value)
        return value

    def validate(self, value: Value) -> None:
        if isinstance(value, int) and not isinstance(value, bool) and self.type in _RANGES:
            low, high = _RANGES[self.type]
            if not low <= value <= high:
                raise InvalidConfigError(f"Invalid value {value} for configuration {self.name}")
        if (self.at_least is not None and isinstance(value, int | float)
                and value < self.at_least):
                raise InvalidConfigError(
                    f"Invalid value {value} for configuration {self.name}: "
                    f"Value must be at least {_render_number(self.at_least)}"
                )
        if (self.at_most is not None and isinstance(value, int | float)
                and not isinstance(value, bool) and value > self.at_most):
            raise InvalidConfigError(
                f"Invalid value {value} for configuration {self.name}: "
                f"Value must be no more than {_render_number(self.at_most)}")
        if self.item_pattern is not None and isinstance(value, list):
            pattern, rule = self.item_pattern
            for item in value:
                if not re.fullmatch(pattern, item):
                    raise InvalidConfigError(
                        f"Invalid value {','.join(value)} for configuration {self.name}: "
                        f"{rule}")
        if self.choices is not None:
            items = value if isinstance(value, list) else [str(value)]
            for item in items:
                if item not in self.choices:
                    raise InvalidConfigError(
                        f"Invalid value {item} for configuration {self.name}: "
                        f"String must be one of: {', '.join(self.choices)}"
                    )

    def render(self, value: Value) -> str | None:
        """The value as Kafka prints it in DescribeConfigs."""
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return ",".join(value)
        if isinstance(value, float):
            return repr(value)
        return str(value)


def _render_number(n: float) -> str:
    return str(int(n)) if float(n).is_integer() else str(n)


def define(name: str, type_: ConfigType, default: Value, doc: str, **kw: Any) -> ConfigDef:
    return ConfigDef(name, type_, default, doc, **kw)


T = ConfigType

INT_MAX = 2**31 - 1

