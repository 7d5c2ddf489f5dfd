"""What CreateAcls may create and what DescribeAcls/DeleteAcls filters match,
as Kafka's AclControlManager, AclApis and AclBindingFilter decide (sans-I/O).

Codes outside Kafka's enums count as UNKNOWN, as Kafka's fromCode makes them.
A creation is refused (INVALID_REQUEST) when its resource type is UNKNOWN or
ANY, its pattern type is not LITERAL or PREFIXED (ANY, MATCH, UNKNOWN), its
operation UNKNOWN or ANY, its permission not ALLOW or DENY, its resource name
empty, a CLUSTER resource not named "kafka-cluster", or its principal not
TYPE:NAME (Kafka fails such an ACL later, when it is used; strom refuses it
up front). A filter with an UNKNOWN element is refused (INVALID_REQUEST).

Filter matching (AclBindingFilter.matches): ANY matches every resource type,
pattern type, operation and permission; a null name, principal or host
matches every one. Pattern type MATCH with a name matches the ACLs that would
apply to a resource of that name: LITERAL of the name or "*", and PREFIXED
whose name the given name starts with. Any other pattern type with a name
matches that exact name. Principals and hosts match exactly (a filter for
"User:*" finds the ACLs naming "User:*", not every principal's).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar

from strom.cluster.image import AclRecord
from strom.security.acl_types import (
    CLUSTER_NAME,
    WILDCARD,
    AclOperation,
    AclPermissionType,
    PatternType,
    ResourceType,
)
from strom.security.principal import KafkaPrincipal

E = TypeVar("E", bound=IntEnum)


def _code(enum: type[E], code: int) -> E:
    """Kafka's fromCode: a code it does not know is UNKNOWN (0 in every enum)."""
    try:
        return enum(code)
    except ValueError:
        return enum(0)


def creation_error(acl: AclRecord) -> str | None:
    """Why CreateAcls refuses this binding (INVALID_REQUEST), None if it may be created."""
    resource_type = _code(ResourceType, acl.resource_type)
    pattern_type = _code(PatternType, acl.pattern_type)
    operation = _code(AclOperation, acl.operation)
    permission = _code(AclPermissionType, acl.permission_type)
    # AclApis's checks come first, then AclControlManager.validateNewAcl's.
    if resource_type == ResourceType.CLUSTER and acl.resource_name != CLUSTER_NAME:
        return f"The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
    if not acl.resource_name:
        return "Invalid empty resource name"
    if resource_type in (ResourceType.UNKNOWN, ResourceType.ANY):
        return f"Invalid resourceType {resource_type.name}"
    if pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
        return f"Invalid patternType {pattern_type.name}"
    if operation in (AclOperation.UNKNOWN, AclOperation.ANY):
        return f"Invalid operation {operation.name}"
    if permission not in (AclPermissionType.ALLOW, AclPermissionType.DENY):
        return f"Invalid permissionType {permission.name}"
    try:
        KafkaPrincipal.parse(acl.principal)
    except ValueError as exc:
        return str(exc)
    return None


@dataclass(frozen=True, slots=True)
class AclBindingFilter:
    """A DescribeAcls request's filter, or one of a DeleteAcls request's."""

    resource_type: int
    resource_name: str | None
    pattern_type: int
    principal: str | None
    host: str | None
    operation: int
    permission_type: int

    def error(self) -> str | None:
        """Why the filter is refused (INVALID_REQUEST): an UNKNOWN element."""
        if _code(ResourceType, self.resource_type) == ResourceType.UNKNOWN \
                or _code(PatternType, self.pattern_type) == PatternType.UNKNOWN:
            return "Unknown patternFilter."
        if _code(AclOperation, self.operation) == AclOperation.UNKNOWN \
                or _code(AclPermissionType, self.permission_type) == AclPermissionType.UNKNOWN:
            return "Unknown entryFilter."
        return None

    def matches(self, acl: AclRecord) -> bool:
        return self._pattern_matches(acl) and self._entry_matches(acl)

    def _pattern_matches(self, acl: AclRecord) -> bool:
        if self.resource_type != ResourceType.ANY and self.resource_type != acl.resource_type:
            return False
        wanted = self.pattern_type
        if wanted not in (PatternType.ANY, PatternType.MATCH) and wanted != acl.pattern_type:
            return False
        name = self.resource_name
        if name is None:
            return True
        if wanted == PatternType.ANY or wanted == acl.pattern_type:
            return name == acl.resource_name
        # MATCH: the ACLs that apply to a resource named `name`.
        if acl.pattern_type == PatternType.LITERAL:
            return name == acl.resource_name or acl.resource_name == WILDCARD
        if acl.pattern_type == PatternType.PREFIXED:
            return name.startswith(acl.resource_name)
        return False

    def _entry_matches(self, acl: AclRecord) -> bool:
        if self.principal is not None and self.principal != acl.principal:
            return False
        if self.host is not None and self.host != acl.host:
            return False
        if self.operation != AclOperation.ANY and self.operation != acl.operation:
            return False
        return (self.permission_type == AclPermissionType.ANY
                or self.permission_type == acl.permission_type)


def matching(acls: frozenset[AclRecord], wanted: AclBindingFilter) -> list[AclRecord]:
    """The ACLs a filter matches, in a stable order (resource, then entry)."""
    return sorted((acl for acl in acls if wanted.matches(acl)), key=acl_order)


def acl_order(acl: AclRecord) -> tuple[int, str, int, str, str, int, int]:
    return (acl.resource_type, acl.resource_name, acl.pattern_type, acl.principal, acl.host,
            acl.operation, acl.permission_type)
