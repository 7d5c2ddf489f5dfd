"""Kafka's ACL matching (StandardAuthorizerData), sans-I/O, over an index.

An ACL applies to a resource when its pattern is LITERAL with the resource's
exact name, LITERAL with the wildcard name "*" (every resource of its type),
or PREFIXED with a name the resource's name starts with. Among the ACLs that
apply, those whose principal is the request's or "User:*" and whose host is
the client's IP or "*" decide:
- a DENY ACL for the operation (or ALL) denies, whatever else allows: deny wins;
- an ALLOW ACL for the operation (or ALL, or one implying it: READ, WRITE,
  DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS;
  implication never applies to DENY: denying READ does not deny DESCRIBE) allows;
- nothing matching: denied, unless no ACL at all applies to the resource and
  allow.everyone.if.no.acl.found is true.
Super users (checked by StandardAuthorizer before this) may do everything.

The index keeps the ACLs by (resource type, name) for LITERAL patterns and
for PREFIXED ones, each bucket by principal, with the distinct prefix lengths
per type: a decision is a few dict look-ups (the literal name, "*", one per
prefix length) whatever the number of ACLs, where Kafka walks a sorted set.
"""

from __future__ import annotations

import functools
import ipaddress
from collections import Counter
from collections.abc import Iterable

from strom.cluster.image import AclRecord
from strom.security.acl_types import (
    WILDCARD,
    WILDCARD_HOST,
    AclOperation,
    AclPermissionType,
    PatternType,
)

WILDCARD_PRINCIPAL = "User:*"

_ALL = AclOperation.ALL
_DENY = AclPermissionType.DENY
_ALLOW = AclPermissionType.ALLOW
_LITERAL = PatternType.LITERAL
_PREFIXED = PatternType.PREFIXED

#: ACL operations whose ALLOW grants an operation (Kafka's IMPLIES_DESCRIBE
#: and IMPLIES_DESCRIBE_CONFIGS, plus the operation itself and ALL).
ALLOWED_BY: dict[int, frozenset[int]] = {
    op: frozenset({op, _ALL}) for op in AclOperation
}
ALLOWED_BY[AclOperation.DESCRIBE] = frozenset({
    AclOperation.DESCRIBE, AclOperation.READ, AclOperation.WRITE, AclOperation.DELETE,
    AclOperation.ALTER, _ALL})
ALLOWED_BY[AclOperation.DESCRIBE_CONFIGS] = frozenset({
    AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS, _ALL})


@functools.lru_cache(maxsize=4096)
def canonical_host(host: str) -> str:
    """An ACL's host or a client's address in one spelling, so that IPv6
    written out in full (Java's getHostAddress: "0:0:0:0:0:0:0:1") and
    compressed ("::1", Python's) match, and an IPv4-mapped IPv6 peer is its
    IPv4 address (as Java's InetAddress makes it). "*" and names stay as they are."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _host_matches(acl_host: str, host: str) -> bool:
    return acl_host == WILDCARD_HOST or canonical_host(acl_host) == host


#: principal -> the ACLs of one resource pattern naming it.
_Bucket = dict[str, set[AclRecord]]


class AclIndex:
    """The ACLs of an image, indexed for decisions; updated in place as ACLs
    are added and removed (StandardAuthorizer follows the image with it)."""

    def __init__(self, acls: Iterable[AclRecord] = ()) -> None:
        # resource type -> name -> principal -> ACLs; one table per pattern type.
        self._literal: dict[int, dict[str, _Bucket]] = {}
        self._prefixed: dict[int, dict[str, _Bucket]] = {}
        # (resource type, prefix length) -> number of PREFIXED patterns of it.
        self._prefix_lengths: Counter[tuple[int, int]] = Counter()
        # resource type -> sorted distinct prefix lengths.
        self._lengths: dict[int, tuple[int, ...]] = {}
        # resource type -> principal -> ACLs (authorize_by_resource_type).
        self._by_type: dict[int, dict[str, set[AclRecord]]] = {}
        self.count = 0
        for acl in acls:
            self.add(acl)

    def add(self, acl: AclRecord) -> None:
        table = self._table(acl.pattern_type)
        if table is None:
            return  # not a pattern an ACL can have (refused at creation)
        names = table.setdefault(acl.resource_type, {})
        bucket = names.get(acl.resource_name)
        if bucket is None:
            bucket = names[acl.resource_name] = {}
            if table is self._prefixed:
                self._count_prefix(acl, 1)
        acls = bucket.setdefault(acl.principal, set())
        if acl in acls:
            return
        acls.add(acl)
        self.count += 1
        self._by_type.setdefault(acl.resource_type, {}).setdefault(
            acl.principal, set()).add(acl)

    def remove(self, acl: AclRecord) -> None:
        table = self._table(acl.pattern_type)
        names = table.get(acl.resource_type) if table is not None else None
        bucket = names.get(acl.resource_name) if names is not None else None
        if table is None or names is None or bucket is None \
                or acl not in bucket.get(acl.principal, ()):
            return
        acls = bucket[acl.principal]
        acls.discard(acl)
        self.count -= 1
        if not acls:
            del bucket[acl.principal]
        if not bucket:
            del names[acl.resource_name]
            if table is self._prefixed:
                self._count_prefix(acl, -1)
        by_principal = self._by_type[acl.resource_type]
        by_principal[acl.principal].discard(acl)
        if not by_principal[acl.principal]:
            del by_principal[acl.principal]

    def _table(self, pattern_type: int) -> dict[int, dict[str, _Bucket]] | None:
        if pattern_type == _LITERAL:
            return self._literal
        if pattern_type == _PREFIXED:
            return self._prefixed
        return None

    def _count_prefix(self, acl: AclRecord, delta: int) -> None:
        key = (acl.resource_type, len(acl.resource_name))
        self._prefix_lengths[key] += delta
        if self._prefix_lengths[key] <= 0:
            del self._prefix_lengths[key]
        self._lengths[acl.resource_type] = tuple(sorted(
            n for t, n in self._prefix_lengths if t == acl.resource_type))

    def _buckets(self, resource_type: int, name: str) -> list[_Bucket]:
        """Every bucket of ACLs whose pattern applies to the resource."""
        found = []
        literal = self._literal.get(resource_type)
        if literal:
            bucket = literal.get(name)
            if bucket is not None:
                found.append(bucket)
            if name != WILDCARD:
                bucket = literal.get(WILDCARD)
                if bucket is not None:
                    found.append(bucket)
        lengths = self._lengths.get(resource_type)
        if lengths:
            prefixed = self._prefixed[resource_type]
            size = len(name)
            for length in lengths:
                if length > size:
                    break
                bucket = prefixed.get(name[:length])
                if bucket is not None:
                    found.append(bucket)
        return found

    def decide(self, principal: str, host: str, operation: int, resource_type: int,
               name: str, *, allow_if_no_acls: bool) -> bool:
        """Kafka's findAclRule for one action of a principal (not a super
        user) from `host` (canonical_host of the client's address)."""
        buckets = self._buckets(resource_type, name)
        if not buckets:
            return allow_if_no_acls
        allowing = ALLOWED_BY[operation]
        allowed = False
        for bucket in buckets:
            for who in (principal, WILDCARD_PRINCIPAL):
                for acl in bucket.get(who, ()):
                    if not _host_matches(acl.host, host):
                        continue
                    if acl.permission_type == _DENY:
                        if acl.operation == operation or acl.operation == _ALL:
                            return False
                    elif acl.permission_type == _ALLOW and acl.operation in allowing:
                        allowed = True
        return allowed

    def allows_some(self, principal: str, host: str, operation: int,
                    resource_type: int) -> bool:
        """The ACL part of Kafka's authorizeByResourceType: may the principal
        do `operation` (exactly, or ALL; implication does not apply here) on
        some resource of the type, one an ALLOW names that no DENY covers
        (a LITERAL deny of the same name, a PREFIXED deny of a prefix of it,
        or the wildcard deny "*", which denies the type outright)?"""
        by_principal = self._by_type.get(resource_type, {})
        deny_literal: set[str] = set()
        deny_prefixed: set[str] = set()
        allow: list[AclRecord] = []
        wildcard_allow = False
        for who in (principal, WILDCARD_PRINCIPAL):
            for acl in by_principal.get(who, ()):
                if not _host_matches(acl.host, host):
                    continue
                if acl.operation != operation and acl.operation != _ALL:
                    continue
                if acl.permission_type == _DENY:
                    if acl.pattern_type == _LITERAL:
                        if acl.resource_name == WILDCARD:
                            return False
                        deny_literal.add(acl.resource_name)
                    else:
                        deny_prefixed.add(acl.resource_name)
                elif acl.permission_type == _ALLOW:
                    if acl.pattern_type == _LITERAL and acl.resource_name == WILDCARD:
                        wildcard_allow = True  # unless a wildcard deny turns up
                    else:
                        allow.append(acl)
        if wildcard_allow:
            return True
        for acl in allow:
            name = acl.resource_name
            if acl.pattern_type == _LITERAL and name in deny_literal:
                continue
            if not any(name[:n] in deny_prefixed for n in range(1, len(name) + 1)):
                return True
        return False

