"""The security records (SCRAM credentials, ACLs, client quotas) in the
metadata image: applied, removed, and carried through a snapshot and the
JSON both stores write."""

from __future__ import annotations

from strom.cluster.image import (
    AclRecord,
    ClientQuotaRecord,
    MetadataImage,
    RemoveAclRecord,
    RemoveScramCredentialRecord,
    ScramCredentialRecord,
    image_to_records,
    record_from_json,
    record_to_json,
)

CRED = ScramCredentialRecord("alice", 1, "c2FsdA==", "c3RvcmVk", "c2VydmVy", 4096)
ACL = AclRecord(2, "orders", 3, "User:alice", "*", 3, 3)
ENTITY = (("client-id", None), ("user", "alice"))


def _empty() -> MetadataImage:
    return MetadataImage("cluster", 1, {})


def test_records_apply_and_remove() -> None:
    image = _empty().apply([CRED, ACL, ClientQuotaRecord(ENTITY, "producer_byte_rate", 1e6)])
    assert image.scram_credentials["alice"][1] == CRED
    assert image.acls == frozenset({ACL})
    assert image.client_quotas[ENTITY] == {"producer_byte_rate": 1e6}
    removed = image.apply([
        RemoveScramCredentialRecord("alice", 1),
        RemoveAclRecord(*(getattr(ACL, f) for f in AclRecord.__dataclass_fields__)),
        ClientQuotaRecord(ENTITY, "producer_byte_rate", None),
    ])
    assert removed.scram_credentials == {}
    assert removed.acls == frozenset()
    assert removed.client_quotas == {}
    # The image before is a value: unchanged.
    assert image.acls == frozenset({ACL})


def test_untouched_security_state_is_shared() -> None:
    image = _empty().apply([ACL])
    assert image.apply([]).acls is image.acls


def test_snapshot_and_json_round_trip() -> None:
    image = _empty().apply([CRED, ACL, ClientQuotaRecord(ENTITY, "consumer_byte_rate", 2e6),
                            ClientQuotaRecord((("user", None),), "request_percentage", 50.0)])
    records = [record_from_json(record_to_json(r)) for r in image_to_records(image)]
    rebuilt = _empty().apply(records)
    assert rebuilt.scram_credentials == image.scram_credentials
    assert rebuilt.acls == image.acls
    assert dict(rebuilt.client_quotas) == dict(image.client_quotas)
