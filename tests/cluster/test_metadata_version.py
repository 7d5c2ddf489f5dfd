"""metadata.version: the gate on new record types, UpdateFeatures' rules, and
what ApiVersions reports (cluster/metadata_version.py, cluster/features.py).
The cluster side (old and new brokers in one cluster) is
test_rolling_upgrade.py."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from strom.cluster import features, metadata_version
from strom.cluster.image import (
    AclRecord,
    BrokerInfo,
    ClientQuotaRecord,
    FeatureLevelRecord,
    MetadataImage,
    PartitionRecord,
    ScramCredentialRecord,
    TopicRecord,
    image_to_records,
)
from strom.cluster.local import FILE_NAME, LocalMetadataStore
from strom.errors import ErrorCode, UnsupportedVersionError
from strom.protocol.api import ApiKey
from strom.testing import EmbeddedBroker
from tests.broker.raw_client import RawClient
from tests.cli.conftest import run_cli
from tests.cluster.brokers import WAIT, controller_and_other, registered_brokers
from tests.cluster.etcd_process import EtcdCluster
from tests.interop.clients import wait_until

ACL = AclRecord(2, "t", 3, "User:alice", "*", 3, 3)
SCRAM = ScramCredentialRecord("alice", 1, "c2FsdA==", "a2V5", "a2V5", 4096)
QUOTA = ClientQuotaRecord((("user", "alice"),), "producer_byte_rate", 1024.0)
LEVEL = FeatureLevelRecord("metadata.version", 11)


def test_new_record_types_need_their_level() -> None:
    topic = TopicRecord("t", uuid.uuid4())
    metadata_version.check_records(7, [topic])
    for record in (ACL, SCRAM, QUOTA):
        with pytest.raises(UnsupportedVersionError, match=r"metadata.version \(3.3-IV3\)"):
            metadata_version.check_records(7, [topic, record])
        metadata_version.check_records(11, [record])
    # Raised earlier in the same batch (a new cluster's first batch).
    metadata_version.check_records(7, [LEVEL, ACL])
    with pytest.raises(UnsupportedVersionError):
        metadata_version.check_records(7, [ACL, LEVEL])


def test_the_image_keeps_the_level_and_snapshots_it_first() -> None:
    image = MetadataImage("c", 1, {})
    assert image.metadata_version == 7  # metadata without a level: an older strom's
    raised = image.apply([LEVEL]).apply([ACL])
    assert raised.metadata_version == 11
    records = image_to_records(raised)
    assert records[0] == LEVEL
    metadata_version.check_records(7, records)  # a snapshot replays at any level
    assert FeatureLevelRecord not in map(type, image_to_records(image))


def _broker(node_id: int, versions: tuple[int, int] | None) -> BrokerInfo:
    return BrokerInfo(node_id, "h", 9000 + node_id, metadata_versions=versions)


def test_update_features_rules() -> None:
    old = MetadataImage("c", 1, {1: _broker(1, None), 2: _broker(2, (7, 7))})
    results, records = features.update_records(old, 1, [("metadata.version", 11, 1)])
    assert records == []
    assert results[0].error_code == ErrorCode.invalid_update_version
    assert results[0].error_message == ("Invalid update version 11 for feature "
                                        "metadata.version. Broker 2 only supports versions "
                                        "[7-7]")
    new = MetadataImage("c", 1, {1: _broker(1, None), 2: _broker(2, (7, 11))})
    assert features.update_records(new, 1, [("metadata.version", 11, 1)]) == (
        [features.FeatureResult("metadata.version")], [LEVEL])
    # A broker holding replicas but not registered (down): unknown version.
    topic_id = uuid.uuid4()
    down = new.apply([TopicRecord("t", topic_id), PartitionRecord(topic_id, 0, (1, 3), (1,), 1, 0)])
    results, records = features.update_records(down, 1, [("metadata.version", 11, 1)])
    assert records == [] and "Broker 3 holds replicas but is not registered" in str(
        results[0].error_message)
    raised = new.apply([LEVEL])
    cases: list[tuple[tuple[str, int, int], str | None]] = [
        (("metadata.version", 11, 1), None),  # already there: nothing written
        (("metadata.version", 7, 1), "without setting the upgrade type"),
        (("metadata.version", 7, 2), "Refusing to downgrade"),
        (("metadata.version", 13, 1), "Local controller 1 only supports versions [7-12]"),
        (("transaction.version", 2, 1), None),
        (("transaction.version", 1, 2), "cannot change it"),
        (("group.version", 1, 1), None),
        (("share.version", 2, 1), "Local controller 1 only supports versions [0-1]"),
        (("no.such.version", 1, 1), "does not support this feature"),
        (("metadata.version", 11, 4), "does not support the given upgrade type"),
    ]
    for update, expected in cases:
        results, records = features.update_records(raised, 1, [update])
        assert records == []
        if expected is None:
            assert results[0].error_code == ErrorCode.none, update
        else:
            assert expected in str(results[0].error_message), (update, results)
    # All or nothing: one refusal and nothing is written.
    results, records = features.update_records(
        new, 1, [("metadata.version", 11, 1), ("share.version", 2, 1)])
    assert records == [] and [r.error_code for r in results] == [
        ErrorCode.none, ErrorCode.invalid_update_version]


def test_a_new_cluster_starts_at_the_newest_level_its_brokers_support() -> None:
    assert features.bootstrap_level(MetadataImage("c", 1, {})) == 12
    assert features.bootstrap_level(MetadataImage("c", 1, {1: _broker(1, (7, 11))})) == 11
    assert features.bootstrap_level(MetadataImage(
        "c", 1, {1: _broker(1, (7, 11)), 2: _broker(2, (7, 7))})) == 7


def _write_old_metadata(directory: Path) -> None:
    """strom-metadata.json as a strom from before metadata.version wrote it."""
    topic_id = str(uuid.uuid4())
    directory.mkdir(parents=True, exist_ok=True)
    (directory / FILE_NAME).write_text(json.dumps({"version": 1, "cluster_id": "old", "records": [
        {"type": "TopicRecord", "name": "t", "topic_id": topic_id},
        {"type": "PartitionRecord", "topic_id": topic_id, "partition": 0, "replicas": [1],
         "isr": [1], "leader": 1, "leader_epoch": 0, "partition_epoch": 0}]}))


def test_local_store_new_node_is_at_the_newest_level_an_old_file_at_the_minimum(
        tmp_path: Path) -> None:
    async def run() -> None:
        (tmp_path / "new").mkdir()
        new = LocalMetadataStore(tmp_path / "new", node_id=1, cluster_id="c",
                                 listener=("h", 1))
        assert new.image.metadata_version == metadata_version.LATEST
        await new.commit([ACL])
        again = LocalMetadataStore(tmp_path / "new", node_id=1, cluster_id="c",
                                   listener=("h", 1))
        assert again.image.metadata_version == metadata_version.LATEST
        assert again.image.acls == {ACL}

        _write_old_metadata(tmp_path / "old")
        before = (tmp_path / "old" / FILE_NAME).read_bytes()
        old = LocalMetadataStore(tmp_path / "old", node_id=1, cluster_id="old",
                                 listener=("h", 1))
        assert old.image.metadata_version == metadata_version.MINIMUM
        with pytest.raises(UnsupportedVersionError):
            await old.submit(lambda: [SCRAM])
        assert (tmp_path / "old" / FILE_NAME).read_bytes() == before  # nothing written
        assert not old.image.scram_credentials
        await old.commit([LEVEL])
        await old.commit([SCRAM])
        assert old.image.scram_credentials["alice"][1] == SCRAM

    asyncio.run(run())


def _features(client: RawClient) -> tuple[dict[str, Any], dict[str, Any], int]:
    response = client.send(ApiKey.API_VERSIONS, 3, {"client_software_name": "t",
                                                    "client_software_version": "1"})
    supported = {f.name: (f.min_version, f.max_version) for f in response.supported_features}
    finalized = {f.name: f.max_version_level for f in response.finalized_features}
    return supported, finalized, response.finalized_features_epoch


def _update(client: RawClient, version: int, level: int, **extra: Any) -> Any:
    update: dict[str, Any] = {"feature": "metadata.version", "max_version_level": level}
    update.update(extra)
    return client.send(ApiKey.UPDATE_FEATURES, version,
                       {"timeout": 30_000, "feature_updates": [update]})


def test_upgrade_a_single_node_from_an_older_strom_over_the_wire(tmp_path: Path) -> None:
    _write_old_metadata(tmp_path / "data")
    with EmbeddedBroker(tmp_path / "data") as broker:
        with RawClient(broker.bootstrap) as client:
            supported, finalized, epoch = _features(client)
            assert supported["metadata.version"] == (7, 12)
            assert finalized == {"metadata.version": 7, "transaction.version": 2,
                                 "group.version": 1, "streams.version": 1,
                                 "share.version": 1}
            assert epoch == 1
            response = client.send(ApiKey.UPDATE_FEATURES, 1, {
                "timeout": 30_000, "validate_only": True,
                "feature_updates": [{"feature": "metadata.version", "max_version_level": 11}]})
            assert response.results[0].error_code == ErrorCode.none
            assert _features(client)[1]["metadata.version"] == 7  # validated only
            # v0 (allow_downgrade), as older admin clients send it.
            response = _update(client, 0, 11, allow_downgrade=False)
            assert response.error_code == ErrorCode.none
            assert response.results[0].error_code == ErrorCode.none
            _, finalized, epoch = _features(client)
            assert finalized["metadata.version"] == 11 and epoch == 5
            # v2: no per-feature results; the failure is the request's.
            response = _update(client, 2, 7, upgrade_type=1)
            assert response.error_code == ErrorCode.invalid_update_version
            assert "downgrade" in str(response.error_message)
        broker.restart()
        with RawClient(broker.bootstrap) as client:
            assert _features(client)[1]["metadata.version"] == 11  # persisted


def test_scram_changes_below_their_level_get_unsupported_version(tmp_path: Path) -> None:
    # Metadata an older strom wrote stays at level 7: AlterUserScramCredentials
    # answers each valid user UNSUPPORTED_VERSION (the connection stays open),
    # and an invalid one keeps its own error.
    _write_old_metadata(tmp_path / "data")
    with EmbeddedBroker(tmp_path / "data") as broker, RawClient(broker.bootstrap) as client:
        upsertion = {"name": "alice", "mechanism": 1, "iterations": 4096,
                     "salt": b"salt", "salted_password": b"x" * 32}
        response = client.send(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, 0, {
            "deletions": [{"name": "bob", "mechanism": 1}], "upsertions": [upsertion]})
        codes = {r.user: r.error_code for r in response.results}
        assert codes == {"alice": ErrorCode.unsupported_version,
                         "bob": ErrorCode.resource_not_found}
        assert _features(client)[1]["metadata.version"] == 7


def test_a_new_etcd_cluster_is_at_the_newest_level_and_forwards_updates(
        tmp_path: Path, etcd: EtcdCluster) -> None:
    with registered_brokers(tmp_path, etcd) as started:
        controller, other = controller_and_other(started)
        admin = AdminClient({"bootstrap.servers": other.bootstrap})
        admin.create_topics([NewTopic("first", 1, 2)])["first"].result(WAIT)  # batch 1
        for broker in started:
            with RawClient(broker.bootstrap) as client:
                wait_until(lambda c=client: _features(c)[1]["metadata.version"] == 12, WAIT,
                           what="metadata.version 12 on every broker")
        with RawClient(other.bootstrap, timeout=WAIT) as client:
            # Through the broker that is not the controller: forwarded to it.
            response = _update(client, 1, 12, upgrade_type=1)
            assert response.error_code == ErrorCode.none
            assert response.results[0].error_code == ErrorCode.none
            response = _update(client, 1, 13, upgrade_type=1)
            assert response.results[0].error_message == (
                "Invalid update version 13 for feature metadata.version. Local controller "
                f"{controller.overrides['node.id']} only supports versions [7-12]")


def test_strom_cluster_features_describe_and_upgrade(tmp_path: Path) -> None:
    _write_old_metadata(tmp_path / "data")
    with EmbeddedBroker(tmp_path / "data") as broker:
        b = ("-b", broker.bootstrap)
        described = run_cli("cluster", "features", "describe", *b, "--output", "json")
        assert described.code == 0, described.stderr
        assert {"feature": "metadata.version", "supported_min": 7, "supported_max": 12,
                "finalized": 7, "epoch": 1} in described.json()
        text = run_cli("cluster", "features", "describe", *b).stdout
        assert text.split("\n")[1].split() == [
            "metadata.version", "3.3-IV3", "3.6-IV0", "3.3-IV3", "1"]
        dry = run_cli("cluster", "features", "upgrade", "--metadata", "3.5", "--dry-run", *b)
        assert (dry.code, dry.stdout) == (0, "metadata.version can be upgraded to 3.5-IV2.\n")
        bad = run_cli("cluster", "features", "upgrade", "--feature", "metadata.version=13", *b)
        assert bad.code == 1 and "only supports versions [7-12]" in bad.stdout
        assert run_cli("cluster", "features", "upgrade", "--metadata", "2.8", *b).code == 2
        done = run_cli("cluster", "features", "upgrade", "--metadata", "3.5", *b)
        assert (done.code, done.stdout) == (0, "metadata.version was upgraded to 3.5-IV2.\n")
        described = run_cli("cluster", "features", "describe", *b, "--output", "json")
        assert {"feature": "metadata.version", "supported_min": 7, "supported_max": 12,
                "finalized": 11, "epoch": 5} in described.json()


def test_a_broker_refuses_to_join_a_cluster_at_a_newer_level(etcd: EtcdCluster) -> None:
    """As Kafka's controller refuses a broker that does not support the
    finalized metadata.version (a newer strom finalized 13 here)."""
    from strom.cluster.etcd_client import EtcdClient
    from strom.cluster.etcd_store import EtcdMetadataStore

    def store(node_id: int) -> EtcdMetadataStore:
        return EtcdMetadataStore(EtcdClient(etcd.endpoints, request_timeout=2.0), cluster="c",
                                 node_id=node_id, listener=("127.0.0.1", 9000 + node_id),
                                 lease_ttl=2)

    async def run() -> None:
        newer = store(1)
        await newer.start()
        try:
            await newer.commit([FeatureLevelRecord("metadata.version", 13)])
            joining = store(2)
            with pytest.raises(UnsupportedVersionError, match="metadata.version is 13"):
                await joining.start()
            await joining.stop(deregister=False)
            client = EtcdClient(etcd.endpoints, request_timeout=2.0)
            try:  # its registration withdrawn, not left to its lease
                assert await client.get(newer.keys.broker(2)) is None
                assert await client.get(newer.keys.broker(1)) is not None
            finally:
                await client.close()
        finally:
            await newer.stop()

    asyncio.run(asyncio.wait_for(run(), 40))
