"""An embedded broker with Kafka's StandardAuthorizer on, and the ACLs of a
test set exactly (AclRecords committed through the broker's metadata store).

A PLAINTEXT client is User:ANONYMOUS; `super.users` names only User:admin, so
ANONYMOUS may do what the test grants and nothing else."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from strom.cluster.image import AclRecord, RemoveAclRecord
from strom.security.acl_types import AclOperation, AclPermissionType, PatternType, ResourceType
from strom.testing import EmbeddedBroker

Grant = tuple[ResourceType, str, AclOperation]
ANONYMOUS = "User:ANONYMOUS"

AUTHORIZER = {"authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
              "super.users": "User:admin"}


def acl(rtype: ResourceType, name: str, op: AclOperation, principal: str = ANONYMOUS
        ) -> AclRecord:
    return AclRecord(int(rtype), name, int(PatternType.LITERAL), principal, "*", int(op),
                     int(AclPermissionType.ALLOW))


def with_acls(broker: EmbeddedBroker, grants: Iterable[Grant],
              others: Iterable[AclRecord] = ()) -> None:
    """Make the cluster's ACLs exactly `grants` (to ANONYMOUS) and `others`."""
    async def commit() -> None:
        store = broker.services.metadata
        records: list[Any] = [RemoveAclRecord(**{f: getattr(a, f) for f in a.__slots__})
                              for a in store.image.acls]
        records += [acl(*g) for g in grants]
        records += list(others)
        await store.commit(records)
    broker.run(commit())


@contextmanager
def secured_broker(overrides: Mapping[str, str] | None = None) -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker(overrides={**AUTHORIZER, **(overrides or {})})
    broker.start()
    try:
        yield broker
    finally:
        broker.close()
