"""What handlers ask before they act: may this principal, from this host, do
this operation on this resource? The broker holds one Authorizer; with no
`authorizer.class.name` configured it is ALLOW_ALL (Kafka without an
authorizer), otherwise strom's StandardAuthorizer over the ACLs in the
metadata image."""

from __future__ import annotations

from typing import Protocol

from strom.security.acl_types import AclOperation, ResourceType
from strom.security.principal import KafkaPrincipal


class Authorizer(Protocol):
    @property
    def enabled(self) -> bool:
        """False for ALLOW_ALL: handlers may skip per-resource work (KIP-430
        answers, Metadata filtering) that would allow everything anyway."""

    def authorize(self, principal: KafkaPrincipal, host: str, operation: AclOperation,
                  resource_type: ResourceType, resource_name: str) -> bool:
        """May `principal` connected from `host` (an IP address, no "/")
        perform `operation` on the resource? Kafka's Authorizer.authorize for
        one action, with its implied operations, deny-wins and super users."""

    def authorize_by_resource_type(self, principal: KafkaPrincipal, host: str,
                                   operation: AclOperation,
                                   resource_type: ResourceType) -> bool:
        """Could `principal` perform `operation` on some resource of this type
        (Kafka's authorizeByResourceType, used e.g. for idempotent producers
        without IDEMPOTENT_WRITE on the cluster)?"""


class AllowAll:
    """No authorizer configured: every request is allowed (Kafka's default)."""

    # A class attribute, not a property: handlers test it on every request.
    enabled = False

    def authorize(self, principal: KafkaPrincipal, host: str, operation: AclOperation,
                  resource_type: ResourceType, resource_name: str) -> bool:
        return True

    def authorize_by_resource_type(self, principal: KafkaPrincipal, host: str,
                                   operation: AclOperation,
                                   resource_type: ResourceType) -> bool:
        return True


ALLOW_ALL: Authorizer = AllowAll()
