"""Share groups' per-group configs (KIP-932 share.* GROUP configs): Kafka 4.4's names,
defaults, ranges and messages; the effective values share partitions read; the group
coordinator's use of a group's share.session.timeout.ms / share.heartbeat.interval.ms."""

from __future__ import annotations

import datetime
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from strom.broker import group_configs as gc
from strom.config import BrokerConfig
from strom.errors import ErrorCode, InvalidConfigError
from strom.protocol.api import ApiKey
from strom.testing import EmbeddedBroker
from tests.broker.raw_client import RawClient
from tests.wire import metadata_request

GROUP = 32
CONFIG = BrokerConfig({})


def test_defaults_follow_the_broker() -> None:
    settings = gc.share_group_settings(CONFIG, {})
    assert settings == gc.ShareGroupSettings(45000, 5000, 30000, 5, 2000, "latest",
                                             "read_uncommitted", True)
    broker = BrokerConfig.from_properties({"group.share.record.lock.duration.ms": "20000"})
    own = gc.share_group_settings(broker,
                                  {"share.isolation.level": "read_committed",
                                   "share.auto.offset.reset": "by_duration:PT1H30M",
                                   "share.delivery.count.limit": 3})
    assert (own.record_lock_duration_ms, own.delivery_count_limit) == (20000, 3)
    assert own.read_committed and own.reset_by_duration_ms == 5_400_000


@pytest.mark.parametrize(("configs", "message"), [
    ({"share.record.lock.duration.ms": "1000"},
     "share.record.lock.duration.ms must be in the range 15000 to 60000 inclusive."),
    ({"share.delivery.count.limit": "11"},
     "share.delivery.count.limit must be in the range 2 to 10 inclusive."),
    ({"share.partition.max.record.locks": "50"},
     "share.partition.max.record.locks must be in the range 100 to 4000 inclusive."),
    ({"share.session.timeout.ms": "30000"},
     "share.session.timeout.ms must be in the range 45000 to 60000 inclusive."),
    ({"share.heartbeat.interval.ms": "16000"},
     "share.heartbeat.interval.ms must be in the range 5000 to 15000 inclusive."),
    ({"share.isolation.level": "dirty"},
     "Invalid value dirty for configuration share.isolation.level: String must be one of: "
     "read_committed, read_uncommitted"),
    ({"share.auto.offset.reset": "by_duration:-PT1H"},
     "Invalid value by_duration:-PT1H for configuration share.auto.offset.reset: Invalid "
     "value `by_duration:-PT1H` for configuration share.auto.offset.reset. The value must be "
     "either 'earliest', 'latest' or of the format 'by_duration:<PnDTnHnMn.nS>'."),
    ({"share.auto.offset.reset": "none"}, None),
    ({"share.renew.acknowledge.enable": "maybe"},
     "Invalid value maybe for configuration share.renew.acknowledge.enable: Expected value "
     "to be either true or false"),
])
def test_bad_values(configs: dict[str, str], message: str | None) -> None:
    with pytest.raises(InvalidConfigError) as exc:
        gc.validate(CONFIG, configs)
    if message is not None:
        assert exc.value.message == message


def test_session_must_exceed_heartbeat() -> None:
    config = BrokerConfig.from_properties({"group.share.min.session.timeout.ms": "1000"})
    with pytest.raises(InvalidConfigError) as exc:
        gc.validate(config, {"share.session.timeout.ms": "5000"})
    assert exc.value.message == ("share.session.timeout.ms must be greater than "
                                 "share.heartbeat.interval.ms")
    assert gc.validate(config, {"share.session.timeout.ms": "6000",
                                "share.auto.offset.reset": "EARLIEST",
                                "share.renew.acknowledge.enable": "False"}) == {
        "share.session.timeout.ms": 6000, "share.auto.offset.reset": "earliest",
        "share.renew.acknowledge.enable": False}


@pytest.mark.parametrize(("text", "ms"), [
    ("PT0S", 0), ("P1D", 86_400_000), ("PT1.5S", 1500), ("pt2m", 120_000),
    ("P1DT2H3M4.005S", 93_784_005)])
def test_durations(text: str, ms: int) -> None:
    assert gc.parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "P", "PT", "1H", "-P1D", "PT-1S", "P1W"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        gc.parse_duration_ms(text)


def _alter(client: RawClient, group: str, configs: dict[str, str | None]) -> Any:
    response = client.send(ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, {
        "validate_only": False, "resources": [
            {"resource_type": GROUP, "resource_name": group, "configs": [
                {"name": k, "config_operation": 0, "value": v}
                for k, v in configs.items()]}]})
    (result,) = response.responses
    return result.error_code, result.error_message


def test_the_coordinator_and_describe_use_a_groups_share_configs(tmp_path: Path) -> None:
    overrides = {"group.share.min.session.timeout.ms": "1000",
                 "group.share.min.heartbeat.interval.ms": "500",
                 "auto.create.topics.enable": "true", "offsets.topic.num.partitions": "1"}
    with EmbeddedBroker(tmp_path / "data", overrides=overrides) as broker, \
            RawClient(broker.bootstrap) as client:
        group, member = "short-share", str(uuid.uuid4())
        assert _alter(client, group, {"share.session.timeout.ms": "1500",
                                      "share.heartbeat.interval.ms": "700",
                                      "share.isolation.level": "read_committed"}) == (
            ErrorCode.none, None)
        described = client.send(ApiKey.DESCRIBE_CONFIGS, 4, {
            "resources": [{"resource_type": GROUP, "resource_name": group,
                           "configuration_keys": None}],
            "include_synonyms": True, "include_documentation": True}).results[0]
        entries = {e.name: e for e in described.configs}
        level = entries["share.isolation.level"]
        assert (level.value, level.config_source, level.config_type) == (
            "read_committed", 8, 2)  # GROUP_CONFIG, STRING
        reset = entries["share.auto.offset.reset"]
        assert (reset.value, reset.config_source, reset.synonyms) == ("latest", 5, ())
        assert entries["share.renew.acknowledge.enable"].value == "true"

        client.send(ApiKey.METADATA, 12, metadata_request("share-cfg"))
        deadline = time.monotonic() + 15
        while True:  # coordinators start on first use (FindCoordinator)
            client.send(ApiKey.FIND_COORDINATOR, 4, {"key_type": 0,
                                                     "coordinator_keys": [group]})
            joined = client.send(ApiKey.SHARE_GROUP_HEARTBEAT, 1, {
                "group_id": group, "member_id": member, "member_epoch": 0, "rack_id": None,
                "subscribed_topic_names": ["share-cfg"]})
            if joined.error_code == ErrorCode.none:
                break
            assert time.monotonic() < deadline, joined
            time.sleep(0.05)
        assert joined.heartbeat_interval == datetime.timedelta(milliseconds=700)
        # No more heartbeats: gone after the group's 1.5 s, not the broker's 45 s.
        deadline = time.monotonic() + 20
        while True:
            described_group = client.send(ApiKey.SHARE_GROUP_DESCRIBE, 1, {
                "group_ids": [group], "include_authorized_operations": False}).groups[0]
            if not described_group.members:
                break
            assert time.monotonic() < deadline, "the member never expired"
            time.sleep(0.1)
        assert described_group.group_state == "Empty"


@pytest.mark.parametrize(("text", "message"), [
    ("0", "Value must be at least 1"), ("1001", "Value must be no more than 1000")])
def test_group_share_max_size_is_kafkas_range(text: str, message: str) -> None:
    with pytest.raises(InvalidConfigError) as exc:
        BrokerConfig.from_properties({"group.share.max.size": text})
    assert exc.value.message == (f"Invalid value {text} for configuration "
                                 f"group.share.max.size: {message}")
    assert BrokerConfig.from_properties({"group.share.max.size": "1000"}).get(
        "group.share.max.size") == 1000
