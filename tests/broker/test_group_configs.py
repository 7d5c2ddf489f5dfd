"""GROUP config resources (KIP-848 per-group settings): DescribeConfigs,
IncrementalAlterConfigs and AlterConfigs with Kafka 4.4's names, checks,
codes and messages (probed against Kafka 4.4); the group coordinator uses a
group's own session timeout and heartbeat interval; the values are metadata
records gated at metadata.version 12."""

from __future__ import annotations

import datetime
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from strom.cluster import metadata_version
from strom.cluster.image import GroupConfigRecord, MetadataImage, image_to_records
from strom.errors import ErrorCode, UnsupportedVersionError
from strom.protocol.api import ApiKey
from strom.testing import EmbeddedBroker
from tests.broker.admin_helpers import TIMEOUT, admin
from tests.broker.raw_client import RawClient

GROUP = 32
SESSION, HEARTBEAT = "consumer.session.timeout.ms", "consumer.heartbeat.interval.ms"


def _alter(bootstrap: str, group: str, configs: dict[str, str | None], op: int = 0) -> Any:
    with RawClient(bootstrap) as client:
        response = client.send(ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, {
            "validate_only": False, "resources": [
                {"resource_type": GROUP, "resource_name": group, "configs": [
                    {"name": k, "config_operation": op, "value": v}
                    for k, v in configs.items()]}]})
    (result,) = response.responses
    return result.error_code, result.error_message


def _describe(bootstrap: str, group: str, keys: list[str] | None = None) -> Any:
    with RawClient(bootstrap) as client:
        response = client.send(ApiKey.DESCRIBE_CONFIGS, 4, {
            "resources": [{"resource_type": GROUP, "resource_name": group,
                           "configuration_keys": keys}],
            "include_synonyms": True, "include_documentation": True})
    (result,) = response.results
    return result


def test_set_describe_and_delete_through_librdkafka(broker: EmbeddedBroker) -> None:
    group = f"gc-{uuid.uuid4()}"
    resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=[
        ConfigEntry(SESSION, "50000", incremental_operation=AlterConfigOpType.SET)])
    admin(broker).incremental_alter_configs([resource])[resource].result(TIMEOUT)
    described = admin(broker).describe_configs([ConfigResource(ResourceType.GROUP, group)])
    configs = next(iter(described.values())).result(TIMEOUT)
    assert configs[SESSION].value == "50000"
    assert configs[HEARTBEAT].value == "5000" and configs[HEARTBEAT].is_default

    raw = {e.name: e for e in _describe(broker.bootstrap, group).configs}
    assert {SESSION, HEARTBEAT} <= set(raw)  # with the share.* (and other) group configs
    entry = raw[SESSION]
    assert (entry.value, entry.read_only, entry.config_source, entry.config_type) == (
        "50000", False, 8, 3)  # GROUP_CONFIG, INT
    assert [(s.name, s.value, s.source) for s in entry.synonyms] == [
        (SESSION, "50000", 8), ("group.consumer.session.timeout.ms", "45000", 5)]
    assert entry.documentation

    assert _alter(broker.bootstrap, group, {SESSION: None}, op=1) == (ErrorCode.none, None)
    assert broker.services.image.group_configs.get(group) is None
    back = {e.name: e for e in _describe(broker.bootstrap, group, [SESSION]).configs}
    assert (back[SESSION].value, back[SESSION].config_source) == ("45000", 5)


@pytest.mark.parametrize(("configs", "code", "message"), [
    ({"no.such": "1"}, ErrorCode.invalid_config, "Unknown group config name: no.such"),
    ({SESSION: "1000"}, ErrorCode.invalid_config,
     "consumer.session.timeout.ms must be in the range 45000 to 60000 inclusive."),
    ({SESSION: "100000"}, ErrorCode.invalid_config,
     "consumer.session.timeout.ms must be in the range 45000 to 60000 inclusive."),
    ({SESSION: "-5"}, ErrorCode.invalid_config,
     "Invalid value -5 for configuration consumer.session.timeout.ms: "
     "Value must be at least 1"),
    ({SESSION: "x"}, ErrorCode.invalid_config,
     "Invalid value x for configuration consumer.session.timeout.ms: "
     "Not a number of type INT"),
    ({HEARTBEAT: "50000"}, ErrorCode.invalid_config,
     "consumer.heartbeat.interval.ms must be in the range 5000 to 15000 inclusive."),
])
def test_bad_values_get_kafkas_codes(broker: EmbeddedBroker, configs: dict[str, str],
                                     code: ErrorCode, message: str) -> None:
    group = f"gc-{uuid.uuid4()}"
    assert _alter(broker.bootstrap, group, configs) == (code, message)
    assert group not in broker.services.image.group_configs


def test_empty_group_names_refused(broker: EmbeddedBroker) -> None:
    assert _alter(broker.bootstrap, "", {SESSION: "50000"}) == (
        ErrorCode.invalid_request, "Default group resources are not allowed.")
    described = _describe(broker.bootstrap, "")
    assert (described.error_code, described.error_message) == (
        ErrorCode.invalid_request, "Group name must not be empty")
    assert _alter(broker.bootstrap, "g", {SESSION: "50000"}, op=2) == (
        ErrorCode.invalid_config,
        "Can't APPEND to key consumer.session.timeout.ms because its type is not LIST.")


def _heartbeat(client: RawClient, group: str, member: str, epoch: int) -> Any:
    return client.send(ApiKey.CONSUMER_GROUP_HEARTBEAT, 1, {
        "group_id": group, "member_id": member, "member_epoch": epoch, "instance_id": None,
        "rack_id": None, "rebalance_timeout": 30000 if epoch == 0 else -1,
        "subscribed_topic_names": ["gc-topic"] if epoch == 0 else None,
        "subscribed_topic_regex": None, "server_assignor": None,
        "topic_partitions": [] if epoch == 0 else None})


def test_the_coordinator_uses_the_groups_own_values(tmp_path: Path) -> None:
    overrides = {"group.consumer.min.session.timeout.ms": "1000",
                 "group.consumer.min.heartbeat.interval.ms": "500"}
    with EmbeddedBroker(tmp_path / "data", overrides=overrides) as broker:
        group, member = "short-sessions", str(uuid.uuid4())
        assert _alter(broker.bootstrap, group, {SESSION: "1500", HEARTBEAT: "700"}) == (
            ErrorCode.none, None)
        with RawClient(broker.bootstrap) as client:
            deadline = time.monotonic() + 15
            while True:  # coordinators start on first use (FindCoordinator)
                client.send(ApiKey.FIND_COORDINATOR, 4, {"key_type": 0,
                                                         "coordinator_keys": [group]})
                joined = _heartbeat(client, group, member, 0)
                if joined.error_code == ErrorCode.none:
                    break
                assert time.monotonic() < deadline, joined
                time.sleep(0.05)
            assert joined.heartbeat_interval == datetime.timedelta(milliseconds=700)
            # No more heartbeats: gone after the group's 1.5 s, not the broker's 45 s.
            deadline = time.monotonic() + 20
            while True:
                answer = _heartbeat(client, group, member, joined.member_epoch)
                if answer.error_code == ErrorCode.unknown_member_id:
                    break
                assert answer.error_code == ErrorCode.none, answer
                assert time.monotonic() < deadline, "the member never expired"
                time.sleep(2.0)  # longer than the session: the member misses it


def test_records_are_gated_and_snapshotted() -> None:
    record = GroupConfigRecord("g", SESSION, 50000)
    with pytest.raises(UnsupportedVersionError):
        metadata_version.check_records(metadata_version.SECURITY_RECORDS, [record])
    metadata_version.check_records(metadata_version.GROUP_CONFIGS, [record])
    image = MetadataImage("c", 1, {}).apply([record])
    assert image.group_configs == {"g": {SESSION: 50000}}
    assert record in image_to_records(image)
    assert MetadataImage("c", 1, {}).apply(
        [record, GroupConfigRecord("g", SESSION, None)]).group_configs == {}
