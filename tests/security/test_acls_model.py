"""The ACL matcher (strom/security/acls.py, StandardAuthorizer) against a
brute-force reference written straight from Kafka's rules
(StandardAuthorizerData.findAclRule/findResult and the default
Authorizer.authorizeByResourceType), over random ACL sets changed through
the metadata image as a broker sees them."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from strom.cluster.image import AclRecord, MetadataImage, MetadataRecord, RemoveAclRecord
from strom.security.acl_types import (
    AclOperation,
    AclPermissionType,
    PatternType,
    ResourceType,
)
from strom.security.principal import KafkaPrincipal
from strom.security.standard_authorizer import StandardAuthorizer

OPS = [op for op in AclOperation if op not in (AclOperation.UNKNOWN, AclOperation.ANY)]
ACTION_OPS = [op for op in OPS if op != AclOperation.ALL]
TYPES = [ResourceType.TOPIC, ResourceType.GROUP]
NAMES = ["a", "ab", "abc", "b", "*", "*a"]
PRINCIPALS = ["User:alice", "User:*", "User:alice", "Group:alice"]
HOSTS = ["*", "10.0.0.1", "*", "10.0.0.2"]

IMPLIED: dict[int, set[int]] = {
    AclOperation.DESCRIBE: {AclOperation.READ, AclOperation.WRITE, AclOperation.DELETE,
                            AclOperation.ALTER},
    AclOperation.DESCRIBE_CONFIGS: {AclOperation.ALTER_CONFIGS},
}

acl_records = st.builds(
    AclRecord,
    resource_type=st.sampled_from(TYPES).map(int),
    resource_name=st.sampled_from(NAMES),
    pattern_type=st.sampled_from([PatternType.LITERAL, PatternType.PREFIXED]).map(int),
    principal=st.sampled_from(PRINCIPALS),
    host=st.sampled_from(HOSTS),
    # ALL, READ and DESCRIBE drawn more often: they interact (implication, deny ALL).
    operation=st.sampled_from(OPS + [AclOperation.ALL, AclOperation.READ,
                                     AclOperation.DESCRIBE] * 3).map(int),
    permission_type=st.sampled_from([AclPermissionType.ALLOW, AclPermissionType.DENY]).map(int),
)


def reference_authorize(acls: set[AclRecord], super_users: set[str], allow_everyone: bool,
                        principal: str, host: str, op: int, rtype: int, name: str) -> bool:
    if principal in super_users:
        return True
    applying = [a for a in acls if a.resource_type == rtype and (
        (a.pattern_type == PatternType.LITERAL and a.resource_name in (name, "*"))
        or (a.pattern_type == PatternType.PREFIXED and name.startswith(a.resource_name)))]
    if not applying:
        return allow_everyone
    matching = [a for a in applying
                if a.principal in (principal, "User:*") and a.host in ("*", host)]
    if any(a.permission_type == AclPermissionType.DENY
           and a.operation in (op, AclOperation.ALL) for a in matching):
        return False
    return any(a.permission_type == AclPermissionType.ALLOW
               and (a.operation in (op, AclOperation.ALL) or a.operation in IMPLIED.get(op, ()))
               for a in matching)


def reference_by_type(acls: set[AclRecord], super_users: set[str], allow_everyone: bool,
                      principal: str, host: str, op: int, rtype: int) -> bool:
    if reference_authorize(acls, super_users, allow_everyone, principal, host, op, rtype,
                           "hardcode"):
        return True
    deny: dict[PatternType, set[str]] = {PatternType.LITERAL: set(), PatternType.PREFIXED: set()}
    allow: dict[PatternType, set[str]] = {PatternType.LITERAL: set(), PatternType.PREFIXED: set()}
    wildcard_allow = False
    for a in acls:
        if a.resource_type != rtype or a.host not in (host, "*"):
            continue
        if a.principal not in (principal, "User:*"):
            continue
        if a.operation not in (op, AclOperation.ALL):
            continue
        if a.permission_type == AclPermissionType.DENY:
            if a.pattern_type == PatternType.LITERAL and a.resource_name == "*":
                return False
            deny[PatternType(a.pattern_type)].add(a.resource_name)
        else:
            if a.pattern_type == PatternType.LITERAL and a.resource_name == "*":
                wildcard_allow = True
                continue
            allow[PatternType(a.pattern_type)].add(a.resource_name)
    if wildcard_allow:
        return True
    for pattern_type, names in allow.items():
        for name in names:
            if pattern_type == PatternType.LITERAL and name in deny[PatternType.LITERAL]:
                continue
            if not any(name[:i] in deny[PatternType.PREFIXED] for i in range(1, len(name) + 1)):
                return True
    return False


def _image() -> MetadataImage:
    return MetadataImage("c", 1, {})


changes = st.lists(st.tuples(st.booleans(), acl_records), max_size=60)
actions = st.lists(st.tuples(st.sampled_from(["User:alice", "User:bob", "User:carol"]),
                             st.sampled_from(HOSTS[1:]), st.sampled_from(ACTION_OPS),
                             st.sampled_from(TYPES), st.sampled_from(NAMES + ["abcd", "c"])),
                   min_size=1, max_size=30)


@settings(max_examples=300, deadline=None)
@given(changes=changes, actions=actions, allow_everyone=st.booleans(),
       super_alice=st.booleans())
def test_index_agrees_with_reference(changes: list[tuple[bool, AclRecord]],
                                     actions: list[tuple[str, str, int, int, str]],
                                     allow_everyone: bool, super_alice: bool) -> None:
    super_users = {"User:alice"} if super_alice else set()
    authorizer = StandardAuthorizer(super_users=frozenset(super_users),
                                    allow_everyone_if_no_acl_found=allow_everyone)
    image = _image()
    authorizer.load(image)
    model: set[AclRecord] = set()
    # Changes arrive in batches, as the store applies them.
    for start in range(0, len(changes), 7):
        batch: list[MetadataRecord] = []
        for add, acl in changes[start:start + 7]:
            if add:
                batch.append(acl)
                model.add(acl)
            else:
                batch.append(RemoveAclRecord(*(getattr(acl, f)
                                               for f in AclRecord.__dataclass_fields__)))
                model.discard(acl)
        new = image.apply(batch)
        authorizer.on_image(image, new)
        image = new
    assert set(image.acls) == model
    assert authorizer.index.count == len(model)
    # Random actions, and every operation on what each ACL names (most random
    # actions miss the ACLs; these cannot).
    named = [(a.principal if a.principal != "User:*" else "User:carol",
              a.host if a.host != "*" else "10.0.0.2", op, a.resource_type,
              a.resource_name + suffix)
             for a in sorted(model, key=repr) for op in ACTION_OPS for suffix in ("", "c")]
    for principal, host, op, rtype, name in actions + named:
        who = KafkaPrincipal.parse(principal)
        expected = reference_authorize(model, super_users, allow_everyone, principal, host,
                                       op, rtype, name)
        assert authorizer.authorize(who, host, AclOperation(op), ResourceType(rtype),
                                    name) == expected, (principal, host, op, rtype, name)
        expected = reference_by_type(model, super_users, allow_everyone, principal, host, op,
                                     rtype)
        assert authorizer.authorize_by_resource_type(
            who, host, AclOperation(op), ResourceType(rtype)) == expected


@settings(max_examples=100, deadline=None)
@given(acls=st.lists(acl_records, max_size=30))
def test_loaded_index_equals_followed_index(acls: list[AclRecord]) -> None:
    """Loading an image at start and following it to the same ACLs agree."""
    image = _image().apply(acls)
    loaded = StandardAuthorizer()
    loaded.load(image)
    followed = StandardAuthorizer()
    followed.load(_image())
    followed.on_image(_image(), image)
    for acl in acls:
        args = (KafkaPrincipal.parse(acl.principal.replace("*", "x")), "10.0.0.1",
                AclOperation(acl.operation if acl.operation != AclOperation.ALL else 3),
                ResourceType(acl.resource_type), acl.resource_name)
        assert loaded.authorize(*args) == followed.authorize(*args)
