"""StandardAuthorizer decisions on hand-picked cases (Kafka's documented
rules), its settings, and the cost of a decision among 10,000 ACLs."""

from __future__ import annotations

import time

import pytest

from strom.cluster.image import AclRecord, MetadataImage, RemoveAclRecord
from strom.config import BrokerConfig
from strom.security.acl_types import (
    AclOperation as Op,
)
from strom.security.acl_types import (
    AclPermissionType,
    PatternType,
    ResourceType,
)
from strom.security.authorizer import ALLOW_ALL
from strom.security.principal import KafkaPrincipal, user
from strom.security.standard_authorizer import (
    AuthorizerConfigError,
    StandardAuthorizer,
    authorizer_from_config,
    parse_super_users,
)

ALICE = user("alice")
BOB = user("bob")
HOST = "10.0.0.1"
TOPIC = ResourceType.TOPIC
GROUP = ResourceType.GROUP
ALLOW = AclPermissionType.ALLOW
DENY = AclPermissionType.DENY
LITERAL = PatternType.LITERAL
PREFIXED = PatternType.PREFIXED


def acl(name: str, op: Op, *, principal: str = "User:alice", permission: int = ALLOW,
        pattern: int = LITERAL, host: str = "*", rtype: int = TOPIC) -> AclRecord:
    return AclRecord(int(rtype), name, int(pattern), principal, host, int(op), int(permission))


def authorizer(*acls: AclRecord, super_users: str = "", allow_everyone: bool = False
               ) -> StandardAuthorizer:
    a = StandardAuthorizer(super_users=parse_super_users(super_users),
                           allow_everyone_if_no_acl_found=allow_everyone)
    a.load(MetadataImage("c", 1, {}).apply(acls))
    return a


def test_no_acls_denies_everyone_but_super_users() -> None:
    a = authorizer(super_users="User:admin; ;User:ops")
    assert not a.authorize(ALICE, HOST, Op.READ, TOPIC, "t")
    assert a.authorize(user("admin"), HOST, Op.READ, TOPIC, "t")
    assert a.authorize(user("ops"), HOST, Op.ALTER, ResourceType.CLUSTER, "kafka-cluster")


def test_allow_everyone_if_no_acl_found_only_where_no_acl_applies() -> None:
    a = authorizer(acl("t", Op.READ, principal="User:bob"), allow_everyone=True)
    assert a.authorize(ALICE, HOST, Op.WRITE, TOPIC, "other")
    # An ACL applies to "t" (bob's): alice, not named, is denied.
    assert not a.authorize(ALICE, HOST, Op.READ, TOPIC, "t")
    assert a.authorize(BOB, HOST, Op.READ, TOPIC, "t")


def test_literal_wildcard_and_prefixed_patterns() -> None:
    a = authorizer(acl("orders", Op.READ), acl("pay-", Op.WRITE, pattern=PREFIXED),
                   acl("*", Op.DESCRIBE, rtype=GROUP))
    assert a.authorize(ALICE, HOST, Op.READ, TOPIC, "orders")
    assert not a.authorize(ALICE, HOST, Op.READ, TOPIC, "orders2")  # literal is exact
    assert a.authorize(ALICE, HOST, Op.WRITE, TOPIC, "pay-eu")
    assert a.authorize(ALICE, HOST, Op.WRITE, TOPIC, "pay-")
    assert not a.authorize(ALICE, HOST, Op.WRITE, TOPIC, "pay")
    assert a.authorize(ALICE, HOST, Op.DESCRIBE, GROUP, "any-group")
    assert not a.authorize(ALICE, HOST, Op.DESCRIBE, TOPIC, "any-topic")  # other type


def test_deny_wins_over_allow() -> None:
    a = authorizer(acl("*", Op.ALL), acl("secret", Op.READ, permission=DENY),
                   acl("x-", Op.ALL, permission=DENY, pattern=PREFIXED))
    assert a.authorize(ALICE, HOST, Op.READ, TOPIC, "public")
    assert not a.authorize(ALICE, HOST, Op.READ, TOPIC, "secret")
    assert a.authorize(ALICE, HOST, Op.WRITE, TOPIC, "secret")
    assert not a.authorize(ALICE, HOST, Op.DESCRIBE, TOPIC, "x-1")


def test_implied_operations_allow_only() -> None:
    a = authorizer(acl("t", Op.WRITE), acl("c", Op.ALTER_CONFIGS),
                   acl("d", Op.READ), acl("d", Op.READ, permission=DENY))
    assert a.authorize(ALICE, HOST, Op.DESCRIBE, TOPIC, "t")
    assert not a.authorize(ALICE, HOST, Op.READ, TOPIC, "t")
    assert a.authorize(ALICE, HOST, Op.DESCRIBE_CONFIGS, TOPIC, "c")
    assert not a.authorize(ALICE, HOST, Op.DESCRIBE, TOPIC, "c")
    # Denying READ does not deny the DESCRIBE that READ would imply... but
    # nothing allows DESCRIBE either, except READ's implication, which the
    # allow ACL gives: Kafka allows it.
    assert a.authorize(ALICE, HOST, Op.DESCRIBE, TOPIC, "d")
    assert not a.authorize(ALICE, HOST, Op.READ, TOPIC, "d")


def test_principal_and_host_matching() -> None:
    a = authorizer(acl("t", Op.READ, principal="User:*"),
                   acl("h", Op.READ, host="10.0.0.9"),
                   acl("v6", Op.READ, host="0:0:0:0:0:0:0:1"),
                   acl("g", Op.READ, principal="Group:alice"))
    assert a.authorize(BOB, HOST, Op.READ, TOPIC, "t")
    assert a.authorize(ALICE, "10.0.0.9", Op.READ, TOPIC, "h")
    assert not a.authorize(ALICE, HOST, Op.READ, TOPIC, "h")
    # IPv6 written out (as Java prints it) matches the compressed form, and
    # an IPv4-mapped peer is its IPv4 address.
    assert a.authorize(ALICE, "::1", Op.READ, TOPIC, "v6")
    assert a.authorize(ALICE, "::ffff:10.0.0.9", Op.READ, TOPIC, "h")
    # Only User:* is a wildcard principal; other types match exactly.
    assert not a.authorize(ALICE, HOST, Op.READ, TOPIC, "g")
    assert a.authorize(KafkaPrincipal("Group", "alice"), HOST, Op.READ, TOPIC, "g")


def test_super_users_are_whole_principals() -> None:
    a = authorizer(super_users="User:*")
    assert not a.authorize(ALICE, HOST, Op.READ, TOPIC, "t")
    assert a.authorize(KafkaPrincipal("User", "*"), HOST, Op.READ, TOPIC, "t")
    with pytest.raises(AuthorizerConfigError):
        parse_super_users("admin")


def test_authorize_by_resource_type() -> None:
    write = Op.WRITE
    # A literal allow not covered by a deny.
    assert authorizer(acl("t", write)).authorize_by_resource_type(ALICE, HOST, write, TOPIC)
    # Covered by a prefixed deny of a prefix of it, or the same literal deny.
    assert not authorizer(acl("t1", write), acl("t", write, permission=DENY,
                                                pattern=PREFIXED)
                          ).authorize_by_resource_type(ALICE, HOST, write, TOPIC)
    assert not authorizer(acl("t", write), acl("t", write, permission=DENY)
                          ).authorize_by_resource_type(ALICE, HOST, write, TOPIC)
    # A wildcard deny wins over a wildcard allow, whatever the order.
    assert not authorizer(acl("*", write), acl("*", write, permission=DENY),
                          acl("t", write, permission=DENY)
                          ).authorize_by_resource_type(ALICE, HOST, write, TOPIC)
    # Implication does not apply: READ does not give DESCRIBE by type.
    assert not authorizer(acl("t", Op.READ)).authorize_by_resource_type(
        ALICE, HOST, Op.DESCRIBE, TOPIC)
    # Super users, whatever the ACLs.
    assert authorizer(acl("*", write, permission=DENY), super_users="User:alice"
                      ).authorize_by_resource_type(ALICE, HOST, write, TOPIC)


def test_follows_the_image() -> None:
    image = MetadataImage("c", 1, {})
    a = StandardAuthorizer()
    a.load(image)
    read = acl("t", Op.READ)
    added = image.apply([read])
    a.on_image(image, added)
    assert a.authorize(ALICE, HOST, Op.READ, TOPIC, "t")
    removed = added.apply([RemoveAclRecord(*(getattr(read, f)
                                             for f in AclRecord.__dataclass_fields__))])
    a.on_image(added, removed)
    assert not a.authorize(ALICE, HOST, Op.READ, TOPIC, "t")
    assert a.index.count == 0


def test_authorizer_from_config() -> None:
    assert authorizer_from_config(BrokerConfig.from_properties({})) is ALLOW_ALL
    a = authorizer_from_config(BrokerConfig.from_properties({
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:admin", "allow.everyone.if.no.acl.found": "true"}))
    assert isinstance(a, StandardAuthorizer) and a.enabled
    assert a.super_users == {"User:admin"} and a.allow_everyone_if_no_acl_found
    for name in ("kafka.security.authorizer.AclAuthorizer", "com.example.Mine"):
        with pytest.raises(AuthorizerConfigError, match="authorizer.class.name"):
            authorizer_from_config(BrokerConfig.from_properties(
                {"authorizer.class.name": name}))
    with pytest.raises(AuthorizerConfigError, match="super.users"):
        authorizer_from_config(BrokerConfig.from_properties({
            "authorizer.class.name": "strom.security.StandardAuthorizer",
            "super.users": "nobody"}))


def test_decision_cost_with_10000_acls() -> None:
    """Figures, not a timing assertion: a decision among 10,000 ACLs (5,000
    literal topic ACLs, 5,000 prefixed on 500 prefixes of 10 lengths) is a
    few dict look-ups; reported with -s. The assertion is on the work done:
    the same answers as with the ACLs that apply alone."""
    acls = [acl(f"topic-{i}", Op.READ, principal=f"User:u{i % 100}") for i in range(5000)]
    acls += [acl(f"p{i % 500:0{1 + i % 10}d}-", Op.WRITE, pattern=PREFIXED,
                 principal=f"User:u{i % 100}") for i in range(5000)]
    big = authorizer(*acls)
    assert big.index.count == len(set(acls))
    queries = [(user(f"u{i % 100}"), f"topic-{i}") for i in range(0, 5000, 7)]
    start = time.perf_counter()
    rounds = 20
    for _ in range(rounds):
        for who, name in queries:
            big.authorize(who, HOST, Op.READ, TOPIC, name)
    per_call = (time.perf_counter() - start) / (rounds * len(queries))
    print(f"\n10,000 ACLs: {per_call * 1e6:.1f} us per authorize")
    for who, name in queries:
        assert big.authorize(who, HOST, Op.READ, TOPIC, name)
        assert not big.authorize(user("stranger"), HOST, Op.READ, TOPIC, name)


def test_filters_match_as_kafka_acl_binding_filter() -> None:
    from strom.security.acl_filters import AclBindingFilter

    any_ = 1
    literal = acl("orders", Op.READ)
    wildcard = acl("*", Op.WRITE, principal="User:*")
    prefixed = acl("ord", Op.READ, pattern=PREFIXED, permission=DENY, host="10.0.0.9")
    group = acl("ord", Op.READ, rtype=GROUP)
    acls = [literal, wildcard, prefixed, group]

    def found(rtype: int = any_, name: str | None = None, pattern: int = any_,
              principal: str | None = None, host: str | None = None, op: int = any_,
              permission: int = any_) -> list[AclRecord]:
        f = AclBindingFilter(rtype, name, pattern, principal, host, op, permission)
        assert f.error() is None
        return [a for a in acls if f.matches(a)]

    assert found() == acls
    assert found(rtype=TOPIC) == [literal, wildcard, prefixed]
    # ANY with a name, or a specific pattern type: that exact name.
    assert found(name="ord") == [prefixed, group]
    assert found(name="ord", pattern=PREFIXED) == [prefixed]
    assert found(name="orders", pattern=LITERAL) == [literal]
    # MATCH: what applies to a resource of that name.
    assert found(rtype=TOPIC, name="orders", pattern=PatternType.MATCH) == [
        literal, wildcard, prefixed]
    assert found(rtype=TOPIC, name="other", pattern=PatternType.MATCH) == [wildcard]
    # Entry fields match exactly ("User:*" is not a wildcard in a filter).
    assert found(principal="User:*") == [wildcard]
    assert found(host="10.0.0.9") == [prefixed]
    assert found(op=Op.WRITE) == [wildcard]
    assert found(permission=DENY) == [prefixed]
    for bad in (AclBindingFilter(0, None, any_, None, None, any_, any_),
                AclBindingFilter(any_, None, 0, None, None, any_, any_),
                AclBindingFilter(any_, None, any_, None, None, 0, any_),
                AclBindingFilter(any_, None, any_, None, None, any_, 77)):
        assert bad.error() is not None


def test_creation_checks() -> None:
    from strom.security.acl_filters import creation_error

    assert creation_error(acl("t", Op.READ)) is None
    assert creation_error(acl("kafka-cluster", Op.ALTER, rtype=ResourceType.CLUSTER)) is None
    assert creation_error(acl("t", Op.READ, rtype=ResourceType.USER)) is None
    assert creation_error(acl("t", Op.ANY)) == "Invalid operation ANY"
    assert creation_error(acl("t", Op.READ, pattern=PatternType.MATCH)) == \
        "Invalid patternType MATCH"
    assert creation_error(acl("t", Op.READ, rtype=ResourceType.ANY)) == \
        "Invalid resourceType ANY"
    assert creation_error(acl("t", Op.READ, permission=AclPermissionType.ANY)) == \
        "Invalid permissionType ANY"
    assert "TYPE:NAME" in (creation_error(acl("t", Op.READ, principal="alice")) or "")
