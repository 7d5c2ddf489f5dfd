"""The single-node store writes each ACL's JSON once and reuses it: what it
reads back after adds and removes is exactly the image's ACLs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from strom.cluster.image import AclRecord, MetadataRecord, RemoveAclRecord
from strom.cluster.local import LocalMetadataStore


def _store(path: Path) -> LocalMetadataStore:
    return LocalMetadataStore(path, node_id=1, cluster_id="c", listener=("127.0.0.1", 9092))


def _remove(acl: AclRecord) -> RemoveAclRecord:
    return RemoveAclRecord(*(getattr(acl, f) for f in AclRecord.__dataclass_fields__))


def test_acls_written_and_read_back(tmp_path: Path) -> None:
    store = _store(tmp_path)
    acls = [AclRecord(2, f"t-{i}", 3, f"User:u{i % 7}", "*", 3, 3) for i in range(50)]
    steps: list[list[MetadataRecord]] = [
        list(acls[:30]), [_remove(a) for a in acls[:10]], list(acls[30:]),
        [_remove(acls[40]), acls[5]], [],
    ]
    for step in steps:
        asyncio.run(store.commit(step))
        assert _store(tmp_path).image.acls == store.image.acls
    assert store.image.acls == set(acls[5:6] + acls[10:40] + acls[41:])
