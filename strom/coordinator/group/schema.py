"""Kafka's message specs for coordinator records, and codecs generated from them.

kio generates the client protocol's messages from Kafka's JSON specs, but not
the records the group coordinator keeps in `__consumer_offsets` (clients
never see them). This module states those specs as data, field for field as
Kafka's `group-coordinator/src/main/resources/common/message/*.json` do, and
generates from them one kio-compatible dataclass per version, so kio's
serializers (checked byte for byte against Kafka's Java ones) encode and
decode them: the codecs are generated, never hand-written (CONVENTIONS 2).

A spec field gives its versions (`"0+"`, `"1"`, `"0-2"`), nullable versions,
default and, for flexible versions, a tag. Values cross this module as plain
dicts keyed by snake_case field names; a field absent from a version decodes
as its default. Nothing here is specific to groups: the transaction
coordinator's records can be declared the same way.
"""

from __future__ import annotations

import dataclasses
import io
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from kio.serial import entity_reader, entity_writer
from kio.static.constants import EntityType
from kio.static.primitive import f64, i8, i16, i32, i64, u16

from strom.errors import CorruptRecordError
from strom.protocol.request_check import check_entity

MAX_VERSION = 32767


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT: Any = _NoDefault()

_PRIMITIVES: dict[str, Any] = {
    "int8": i8, "int16": i16, "int32": i32, "int64": i64, "float64": f64,
    "bool": bool, "string": str, "bytes": bytes, "uuid": uuid.UUID, "uint16": u16,
}
_ZERO: dict[str, Any] = {
    "int8": 0, "int16": 0, "int32": 0, "int64": 0, "float64": 0.0, "bool": False,
    "string": "", "bytes": b"", "uuid": uuid.UUID(int=0), "uint16": 0,
}


def version_range(text: str) -> tuple[int, int]:
    """Kafka's version-range notation; "none" is the empty range."""
    text = text.strip()
    if text == "none":
        return (1, 0)
    if text.endswith("+"):
        return (int(text[:-1]), MAX_VERSION)
    low, _, high = text.partition("-")
    return (int(low), int(high or low))


def _in(version: int, text: str) -> bool:
    low, high = version_range(text)
    return low <= version <= high


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field: `type` is a primitive, `[]primitive`, `Struct` or `[]Struct`."""

    name: str
    type: str
    versions: str
    nullable: str = "none"
    default: Any = NO_DEFAULT
    tag: int | None = None
    fields: tuple[FieldSpec, ...] = ()

    @property
    def is_array(self) -> bool:
        return self.type.startswith("[]")

    @property
    def element(self) -> str:
        return self.type[2:] if self.is_array else self.type

    @property
    def is_struct(self) -> bool:
        return self.element not in _PRIMITIVES


@dataclass(frozen=True, slots=True)
class MessageSpec:
    name: str
    versions: str
    flexible: str
    fields: tuple[FieldSpec, ...]


class Message:
    """The generated codec of one MessageSpec, every version of it."""

    def __init__(self, spec: MessageSpec) -> None:
        self.spec = spec
        self.low, self.high = version_range(spec.versions)
        # Generated on first use: generating every version of every record at
        # import cost ~25 ms of the broker's start-up.
        self._classes: dict[int, type] = {}

    def encode(self, version: int, values: Mapping[str, Any]) -> bytes:
        cls = self._class(version)
        out = io.BytesIO()
        entity_writer(cls)(out, _build(cls, self.spec.fields, version, values))
        return out.getvalue()

    def decode(self, version: int, data: bytes | memoryview) -> dict[str, Any]:
        """All fields of the spec; ones the version lacks take their defaults.
        Malformed data raises CorruptRecordError."""
        cls = self._class(version)
        try:
            # Records are read back from a log that clients can also write to.
            check_entity(cls, memoryview(data), 0)
            entity, size = entity_reader(cls)(memoryview(data), 0)  # type: ignore[var-annotated]
        except Exception as exc:  # kio raises assorted errors on malformed input
            raise CorruptRecordError(f"malformed {self.spec.name} v{version}: {exc}") from None
        if size != len(data):
            raise CorruptRecordError(
                f"{len(data) - size} trailing bytes after {self.spec.name} v{version}")
        return _unbuild(entity, self.spec.fields)

    def _class(self, version: int) -> type:
        cls = self._classes.get(version)
        if cls is None:
            if not self.low <= version <= self.high:
                raise CorruptRecordError(f"unknown {self.spec.name} version {version}")
            cls = _generate(self.spec.name, self.spec.fields, version,
                            _in(version, self.spec.flexible))
            self._classes[version] = cls
        return cls


def _default(f: FieldSpec) -> Any:
    if f.default is not NO_DEFAULT:
        return f.default
    if f.is_array:
        return ()
    if f.is_struct:
        return None
    return _ZERO[f.type]


def _present(f: FieldSpec, version: int, flexible: bool) -> bool:
    return _in(version, f.versions) and (f.tag is None or flexible)


def _generate(name: str, specs: tuple[FieldSpec, ...], version: int, flexible: bool) -> type:
    """A frozen kio entity dataclass for `version` of the struct `specs`."""
    fields: list[tuple[str, Any, Any]] = []
    for f in specs:
        if not _present(f, version, flexible):
            continue
        nullable = _in(version, f.nullable)
        metadata: dict[str, Any] = {}
        if f.is_struct:
            element: Any = _generate(f.element, f.fields, version, flexible)
        else:
            element = _PRIMITIVES[f.element]
            metadata["kafka_type"] = f.element
        hint: Any = tuple[element, ...] if f.is_array else element
        if nullable:
            hint = hint | None
        if f.tag is not None:
            metadata["tag"] = f.tag
        default = _default(f)
        if f.tag is not None or f.default is not NO_DEFAULT:
            field = dataclasses.field(metadata=metadata, default=default)
        else:
            field = dataclasses.field(metadata=metadata)
        fields.append((f.name, hint, field))
    namespace: dict[str, Any] = {
        "__type__": EntityType.data,
        "__version__": i16(version),
        "__flexible__": flexible,
        "__annotations__": {"__type__": ClassVar, "__version__": ClassVar,
                            "__flexible__": ClassVar},
    }
    return dataclasses.make_dataclass(name, fields, namespace=namespace, frozen=True,
                                      slots=True, kw_only=True)


def _build(cls: type, specs: tuple[FieldSpec, ...], version: int,
           values: Mapping[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    hints = {f.name: f for f in dataclasses.fields(cls)}
    for spec in specs:
        if spec.name not in hints:
            continue
        value = values.get(spec.name, _default(spec))
        if spec.is_struct and value is not None:
            nested = _nested_class(hints[spec.name].type)
            if spec.is_array:
                value = tuple(_build(nested, spec.fields, version, v) for v in value)
            else:
                value = _build(nested, spec.fields, version, value)
        elif spec.is_array and value is not None:
            value = tuple(value)
        kwargs[spec.name] = value
    return cls(**kwargs)


def _nested_class(hint: Any) -> type:
    for arg in getattr(hint, "__args__", (hint,)):
        if dataclasses.is_dataclass(arg):
            return arg  # type: ignore[return-value]
        if arg is not type(None):
            inner = _nested_class(arg) if hasattr(arg, "__args__") else None
            if inner is not None:
                return inner
    raise TypeError(f"no struct in {hint!r}")


def _unbuild(entity: Any, specs: tuple[FieldSpec, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in specs:
        value = getattr(entity, spec.name, dataclasses.MISSING)
        if value is dataclasses.MISSING:
            value = _default(spec)
        elif spec.is_struct and value is not None:
            if spec.is_array:
                value = tuple(_unbuild(v, spec.fields) for v in value)
            else:
                value = _unbuild(value, spec.fields)
        out[spec.name] = value
    return out
