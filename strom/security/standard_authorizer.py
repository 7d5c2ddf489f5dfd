"""strom's StandardAuthorizer: Kafka's KRaft authorizer over the ACLs in the
metadata image (both stores keep them), turned on by `authorizer.class.name`.

Settings, with Kafka's names and defaults:
- authorizer.class.name: "" (no authorizer: every request allowed, and the
  ACL APIs answer SECURITY_DISABLED); Kafka's
  org.apache.kafka.metadata.authorizer.StandardAuthorizer (or strom's own
  name, strom.security.StandardAuthorizer) turns this one on. Any other
  name, including the ZooKeeper-era kafka.security.authorizer.AclAuthorizer
  that Kafka 4 removed, stops the broker at start with one line.
- super.users: "" ; principals separated by ";" ("User:admin;User:ops"),
  allowed everything whatever the ACLs say. Compared as whole strings, as
  Kafka does: "User:*" there is not a wildcard.
- allow.everyone.if.no.acl.found: false; true lets everyone act on a
  resource no ACL applies to.
"""

from __future__ import annotations

from strom.cluster.image import AclRecord, MetadataImage
from strom.config import BrokerConfig
from strom.security.acl_types import AclOperation, ResourceType
from strom.security.acls import AclIndex, canonical_host
from strom.security.authorizer import ALLOW_ALL, Authorizer
from strom.security.principal import KafkaPrincipal

KAFKA_STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
STROM_STANDARD_AUTHORIZER = "strom.security.StandardAuthorizer"
STANDARD_AUTHORIZER_NAMES = frozenset({KAFKA_STANDARD_AUTHORIZER, STROM_STANDARD_AUTHORIZER})
#: The ZooKeeper-mode authorizer, removed in Kafka 4.0 (KIP-500 migration).
KAFKA_ACL_AUTHORIZER = "kafka.security.authorizer.AclAuthorizer"


class AuthorizerConfigError(ValueError):
    """The authorizer settings cannot be used; the message is one line."""


def parse_super_users(text: str) -> frozenset[str]:
    """Kafka's getConfiguredSuperUsers: ";"-separated principals, trimmed,
    empty items skipped; each must be TYPE:NAME."""
    users = set()
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        try:
            KafkaPrincipal.parse(item)
        except ValueError as exc:
            raise AuthorizerConfigError(f"super.users: {exc}") from None
        users.add(item)
    return frozenset(users)


class StandardAuthorizer:
    """Decides with an AclIndex that follows the metadata image."""

    def __init__(self, *, super_users: frozenset[str] = frozenset(),
                 allow_everyone_if_no_acl_found: bool = False) -> None:
        self.super_users = super_users
        self.allow_everyone_if_no_acl_found = allow_everyone_if_no_acl_found
        self.index = AclIndex()
        self._acls: frozenset[AclRecord] = frozenset()

    # A class attribute, not a property: handlers test it on every request.
    enabled = True

    def load(self, image: MetadataImage) -> None:
        """Start from an image's ACLs (at start-up, before serving)."""
        self.index = AclIndex(image.acls)
        self._acls = image.acls

    def on_image(self, old: MetadataImage, new: MetadataImage) -> None:
        """A store listener: apply what changed in the ACLs. An image keeps
        the same frozenset when a batch touched no ACL, so most changes cost
        one identity check; the others, two set differences (in C) and work
        per ACL added or removed."""
        acls = new.acls
        if acls is self._acls:
            return
        previous = self._acls
        for acl in previous - acls:
            self.index.remove(acl)
        for acl in acls - previous:
            self.index.add(acl)
        self._acls = acls

    def authorize(self, principal: KafkaPrincipal, host: str, operation: AclOperation,
                  resource_type: ResourceType, resource_name: str) -> bool:
        name = str(principal)
        if name in self.super_users:
            return True
        return self.index.decide(name, canonical_host(host), operation, resource_type,
                                 resource_name,
                                 allow_if_no_acls=self.allow_everyone_if_no_acl_found)

    def authorize_by_resource_type(self, principal: KafkaPrincipal, host: str,
                                   operation: AclOperation,
                                   resource_type: ResourceType) -> bool:
        # Kafka's default Authorizer.authorizeByResourceType: first a
        # hard-coded name, so super users (and allow.everyone.if.no.acl.found
        # with nothing applying to that name) pass regardless of DENY ACLs.
        if self.authorize(principal, host, operation, resource_type, "hardcode"):
            return True
        return self.index.allows_some(str(principal), canonical_host(host), operation,
                                      resource_type)


def authorizer_from_config(config: BrokerConfig) -> Authorizer:
    """The broker's Authorizer from authorizer.class.name, super.users and
    allow.everyone.if.no.acl.found; AuthorizerConfigError for a class strom
    does not have."""
    class_name = str(config.get("authorizer.class.name") or "").strip()
    if not class_name:
        return ALLOW_ALL
    if class_name not in STANDARD_AUTHORIZER_NAMES:
        hint = (" (the ZooKeeper authorizer, removed in Kafka 4.0)"
                if class_name == KAFKA_ACL_AUTHORIZER else "")
        raise AuthorizerConfigError(
            f"authorizer.class.name: {class_name} is not an authorizer strom has{hint}; "
            f"use {KAFKA_STANDARD_AUTHORIZER}")
    return StandardAuthorizer(
        super_users=parse_super_users(str(config.get("super.users") or "")),
        allow_everyone_if_no_acl_found=bool(config.get("allow.everyone.if.no.acl.found")))
