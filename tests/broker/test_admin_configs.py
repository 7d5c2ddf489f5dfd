"""DescribeConfigs, AlterConfigs and IncrementalAlterConfigs against a live
broker, through confluent-kafka's AdminClient and raw requests."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    ResourceType,
)

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.testing import EmbeddedBroker
from tests.broker.admin_helpers import TIMEOUT, admin, create, error_of, forget
from tests.broker.raw_client import send

TOPIC, BROKER, BROKER_LOGGER = 2, 4, 8
# confluent-kafka deprecates the legacy AlterConfigs API; the broker still serves it.
legacy_api = pytest.mark.filterwarnings("ignore:alter_configs has been deprecated")
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


def describe(broker: EmbeddedBroker, resource_type: int, name: str,
             keys: list[str] | None = None, *, synonyms: bool = False,
             documentation: bool = False) -> Any:
    response = send(broker.bootstrap, ApiKey.DESCRIBE_CONFIGS, 4, {
        "resources": [{"resource_type": resource_type, "resource_name": name,
                       "configuration_keys": keys}],
        "include_synonyms": synonyms, "include_documentation": documentation})
    (result,) = response.results
    return result


def entries(result: Any) -> dict[str, Any]:
    return {c.name: c for c in result.configs}


def legacy_alter(broker: EmbeddedBroker, resource_type: int, name: str,
                 configs: dict[str, str | None], validate_only: bool = False) -> Any:
    response = send(broker.bootstrap, ApiKey.ALTER_CONFIGS, 2, {
        "resources": [{"resource_type": resource_type, "resource_name": name,
                       "configs": [{"name": k, "value": v} for k, v in configs.items()]}],
        "validate_only": validate_only})
    (result,) = response.responses
    return result


def incremental(broker: EmbeddedBroker, resource_type: int, name: str,
                ops: list[tuple[str, int, str | None]], validate_only: bool = False) -> Any:
    response = send(broker.bootstrap, ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, {
        "resources": [{"resource_type": resource_type, "resource_name": name,
                       "configs": [{"name": n, "config_operation": op, "value": v}
                                   for n, op, v in ops]}],
        "validate_only": validate_only})
    (result,) = response.responses
    return result


def overrides(broker: EmbeddedBroker, topic: str) -> dict[str, Any]:
    return dict(broker.services.image.topics[topic].configs)


# --- DescribeConfigs ------------------------------------------------------------


def test_describe_topic_configs(broker: EmbeddedBroker, topic_name: str) -> None:
    create(broker, topic_name, config={"retention.ms": "12345"})
    resource = ConfigResource(ResourceType.TOPIC, topic_name)
    configs = admin(broker).describe_configs([resource])[resource].result(TIMEOUT)
    assert configs["retention.ms"].value == "12345"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["cleanup.policy"].value == "delete"
    assert configs["cleanup.policy"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["cleanup.policy"].is_default
    assert not configs["segment.bytes"].is_read_only


def test_describe_configs_keys_filter(broker: EmbeddedBroker, topic_name: str) -> None:
    create(broker, topic_name)
    result = describe(broker, TOPIC, topic_name, ["retention.ms", "cleanup.policy", "nope"])
    assert result.error_code == ErrorCode.none
    assert sorted(entries(result)) == ["cleanup.policy", "retention.ms"]
    assert len(describe(broker, TOPIC, topic_name, []).configs) > 10  # empty means all


def test_describe_configs_synonyms_and_documentation_only_when_asked(
        broker: EmbeddedBroker, topic_name: str) -> None:
    create(broker, topic_name, config={"max.message.bytes": "2000"})
    plain = entries(describe(broker, TOPIC, topic_name, ["max.message.bytes"]))
    assert plain["max.message.bytes"].synonyms == ()
    assert plain["max.message.bytes"].documentation is None
    full = entries(describe(broker, TOPIC, topic_name, ["max.message.bytes"],
                            synonyms=True, documentation=True))["max.message.bytes"]
    assert [(s.name, s.value, s.source) for s in full.synonyms] == [
        ("max.message.bytes", "2000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value),
        ("message.max.bytes", "1048588", ConfigSource.DEFAULT_CONFIG.value),
    ]
    assert full.documentation
    assert full.config_type == 3  # INT


def test_describe_unknown_topic(broker: EmbeddedBroker, topic_name: str) -> None:
    resource = ConfigResource(ResourceType.TOPIC, topic_name)
    error = error_of(admin(broker).describe_configs([resource])[resource])
    assert error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_describe_broker_by_id(broker: EmbeddedBroker) -> None:
    node = str(broker.services.node_id)
    resource = ConfigResource(ResourceType.BROKER, node)
    configs = admin(broker).describe_configs([resource])[resource].result(TIMEOUT)
    assert configs["num.partitions"].value == "1"
    assert configs["num.partitions"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert configs["node.id"].is_read_only
    assert configs["log.segment.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
    # Read-only unless Kafka updates it dynamically (DynamicBrokerConfig's list):
    # log.retention.ms is, its synonym log.retention.hours is not.
    assert not configs["log.retention.ms"].is_read_only
    assert configs["log.retention.hours"].is_read_only
    assert configs["num.partitions"].is_read_only
    assert configs["group.consumer.session.timeout.ms"].is_read_only
    assert not configs["message.max.bytes"].is_read_only


@pytest.mark.parametrize(("name", "message"), [
    ("42", "Unexpected broker id, expected {node} or empty string, but received 42"),
    ("abc", "Broker id must be an integer, but it is: abc"),
])
def test_describe_other_broker_is_invalid(broker: EmbeddedBroker, name: str,
                                          message: str) -> None:
    result = describe(broker, BROKER, name)
    assert result.error_code == ErrorCode.invalid_request
    assert result.error_message == message.format(node=broker.services.node_id)
    assert result.configs == ()


def test_describe_broker_loggers(broker: EmbeddedBroker) -> None:
    node = str(broker.services.node_id)
    result = entries(describe(broker, BROKER_LOGGER, node))
    assert result["root"].value in ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
    assert "strom.broker.connection" in result
    empty = describe(broker, BROKER_LOGGER, "")
    assert (empty.error_code, empty.error_message) == (ErrorCode.invalid_request,
                                                       "Broker id must not be empty")


def test_describe_unsupported_resource_type(broker: EmbeddedBroker) -> None:
    result = describe(broker, 16, "some-subscription")  # CLIENT_METRICS (KIP-714)
    assert result.error_code == ErrorCode.invalid_request
    assert result.error_message == "Unsupported resource type: CLIENT_METRICS"


# --- AlterConfigs (legacy) ------------------------------------------------------


@legacy_api
def test_alter_configs_replaces_all_topic_overrides(broker: EmbeddedBroker,
                                                     topic_name: str) -> None:
    create(broker, topic_name, config={"retention.ms": "1000", "segment.bytes": "100000"})
    resource = ConfigResource(ResourceType.TOPIC, topic_name,
                              set_config={"cleanup.policy": "compact"})
    admin(broker).alter_configs([resource])[resource].result(TIMEOUT)
    assert overrides(broker, topic_name) == {"cleanup.policy": ["compact"]}
    partition = broker.services.replicas.get(topic_name, 0)
    assert partition.config.cleanup_policy == ["compact"]
    assert partition.config.get("retention.ms") == 604800000


def test_alter_configs_validate_only(broker: EmbeddedBroker, topic_name: str) -> None:
    create(broker, topic_name, config={"retention.ms": "1000"})
    result = legacy_alter(broker, TOPIC, topic_name, {"retention.ms": "2000"},
                          validate_only=True)
    assert result.error_code == ErrorCode.none
    assert overrides(broker, topic_name) == {"retention.ms": 1000}


@legacy_api
@pytest.mark.parametrize(("configs", "message"), [
    ({"retention.ms": "abc"}, "Invalid value abc for configuration retention.ms: Not a number "
                              "of type LONG"),
    ({"retention.ms": "-7"}, "Invalid value -7 for configuration retention.ms: Value must be "
                             "at least -1"),
    ({"cleanup.policy": "gone"}, "Invalid value gone for configuration cleanup.policy: String "
                                 "must be one of: compact, delete"),
    ({"no.such.config": "1"}, "Unknown topic config name: no.such.config"),
])
def test_alter_configs_invalid_topic_config(broker: EmbeddedBroker, topic_name: str,
                                            configs: dict[str, str], message: str) -> None:
    create(broker, topic_name, config={"retention.ms": "1000"})
    resource = ConfigResource(ResourceType.TOPIC, topic_name, set_config=configs)
    error = error_of(admin(broker).alter_configs([resource])[resource])
    assert error.code() == KafkaError.INVALID_CONFIG
    assert error.str() == message
    assert overrides(broker, topic_name) == {"retention.ms": 1000}


def test_alter_configs_unknown_topic(broker: EmbeddedBroker, topic_name: str) -> None:
    result = legacy_alter(broker, TOPIC, topic_name, {"retention.ms": "1000"})
    assert result.error_code == ErrorCode.unknown_topic_or_partition
    assert result.error_message == f"The topic '{topic_name}' does not exist."


def test_alter_configs_request_errors(broker: EmbeddedBroker, topic_name: str) -> None:
    create(broker, topic_name)
    resource = {"resource_type": TOPIC, "resource_name": topic_name,
                "configs": [{"name": "retention.ms", "value": "1"}]}
    response = send(broker.bootstrap, ApiKey.ALTER_CONFIGS, 2,
                    {"resources": [resource, resource], "validate_only": False})
    assert [(r.error_code, r.error_message) for r in response.responses] == [
        (ErrorCode.invalid_request, "Each resource must appear at most once.")] * 2
    null = legacy_alter(broker, TOPIC, topic_name, {"retention.ms": None})
    assert (null.error_code, null.error_message) == (
        ErrorCode.invalid_request, "Null value not supported for : retention.ms")
    logger = legacy_alter(broker, BROKER_LOGGER, str(broker.services.node_id), {"root": "INFO"})
    assert (logger.error_code, logger.error_message) == (
        ErrorCode.invalid_request, "AlterConfigs does not support BROKER_LOGGER resources")


def test_alter_configs_duplicate_keys(broker: EmbeddedBroker, topic_name: str) -> None:
    create(broker, topic_name)
    response = send(broker.bootstrap, ApiKey.ALTER_CONFIGS, 2, {"resources": [
        {"resource_type": TOPIC, "resource_name": topic_name,
         "configs": [{"name": "retention.ms", "value": "1"},
                     {"name": "retention.ms", "value": "2"}]}], "validate_only": False})
    assert (response.responses[0].error_code, response.responses[0].error_message) == (
        ErrorCode.invalid_request, "Error due to duplicate config keys")


def test_alter_broker_default_configs(fresh_broker: EmbeddedBroker, topic_name: str) -> None:
    broker = fresh_broker
    create(broker, topic_name)
    result = legacy_alter(broker, BROKER, "", {"log.retention.ms": "5000",
                                                "message.max.bytes": "2000000"})
    assert result.error_code == ErrorCode.none
    assert broker.services.config.dynamic == {"log.retention.ms": 5000,
                                              "message.max.bytes": 2000000}
    # Topics without overrides follow, down to their logs.
    partition = broker.services.replicas.get(topic_name, 0)
    assert partition.config.get("retention.ms") == 5000
    assert partition.log.config.retention_ms == 5000
    topic_entry = entries(describe(broker, TOPIC, topic_name, ["retention.ms"]))["retention.ms"]
    assert topic_entry.value == "5000"
    assert topic_entry.config_source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
    # The cluster default lists only the dynamic configs.
    defaults = entries(describe(broker, BROKER, ""))
    assert sorted(defaults) == ["log.retention.ms", "message.max.bytes"]
    assert defaults["log.retention.ms"].config_source == \
        ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
    # Legacy AlterConfigs replaces the whole set.
    assert legacy_alter(broker, BROKER, "", {"log.retention.ms": "6000"}).error_code == 0
    assert broker.services.config.dynamic == {"log.retention.ms": 6000}
    # Durable across restarts.
    broker.restart()
    assert broker.services.config.dynamic == {"log.retention.ms": 6000}
    assert broker.services.replicas.get(topic_name, 0).config.get("retention.ms") == 6000
    forget(broker)


@legacy_api
def test_alter_broker_config_addressed_by_node_id(fresh_broker: EmbeddedBroker) -> None:
    broker = fresh_broker
    resource = ConfigResource(ResourceType.BROKER, str(broker.services.node_id),
                              set_config={"log.retention.bytes": "1000000"})
    admin(broker).alter_configs([resource])[resource].result(TIMEOUT)
    assert broker.services.config.get("log.retention.bytes") == 1000000
    forget(broker)


@pytest.mark.parametrize(("name", "configs", "message"), [
    ("", {"node.id": "5"}, "Cannot update these configs dynamically: Set(node.id)"),
    ("", {"message.max.bytes": "big"},
     "Invalid value big for configuration message.max.bytes: Not a number of type INT"),
    ("", {"log.flush.interval.messages": "0"},
     "Invalid value 0 for configuration log.flush.interval.messages: Value must be at least 1"),
    # Static in Kafka (not in DynamicBrokerConfig's list): refused as read-only.
    ("", {"log.retention.hours": "1", "num.partitions": "3"},
     "Cannot update these configs dynamically: Set(log.retention.hours, num.partitions)"),
    ("77", {"message.max.bytes": "100"}, "Unexpected node id. Expected {node}, but received 77"),
    ("x", {"message.max.bytes": "100"}, "Node id must be an integer, but it is: x"),
])
def test_alter_broker_configs_invalid(fresh_broker: EmbeddedBroker, name: str,
                                      configs: dict[str, str], message: str) -> None:
    broker = fresh_broker
    result = legacy_alter(broker, BROKER, name, configs)
    assert result.error_code == ErrorCode.invalid_request
    assert result.error_message == message.format(node=broker.services.node_id)
    assert broker.services.config.dynamic == {}


def test_alter_broker_validate_only(fresh_broker: EmbeddedBroker) -> None:
    result = legacy_alter(fresh_broker, BROKER, "", {"message.max.bytes": "5000"},
                          validate_only=True)
    assert result.error_code == ErrorCode.none
    assert fresh_broker.services.config.dynamic == {}


# --- IncrementalAlterConfigs ----------------------------------------------------


def test_incremental_set_and_delete_keep_other_overrides(broker: EmbeddedBroker,
                                                         topic_name: str) -> None:
    create(broker, topic_name, config={"retention.ms": "1000", "segment.bytes": "100000"})
    resource = ConfigResource(ResourceType.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("retention.ms", "2000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("segment.bytes", None, incremental_operation=AlterConfigOpType.DELETE),
        ConfigEntry("max.message.bytes", "5000", incremental_operation=AlterConfigOpType.SET),
    ])
    admin(broker).incremental_alter_configs([resource])[resource].result(TIMEOUT)
    assert overrides(broker, topic_name) == {"retention.ms": 2000, "max.message.bytes": 5000}
    partition = broker.services.replicas.get(topic_name, 0)
    assert partition.config.get("max.message.bytes") == 5000
    assert partition.log.config.segment_bytes == 1073741824


def test_incremental_append_and_subtract_list(broker: EmbeddedBroker, topic_name: str) -> None:
    create(broker, topic_name)
    result = incremental(broker, TOPIC, topic_name, [("cleanup.policy", APPEND, "compact")])
    assert result.error_code == ErrorCode.none
    assert overrides(broker, topic_name) == {"cleanup.policy": ["delete", "compact"]}
    incremental(broker, TOPIC, topic_name, [("cleanup.policy", APPEND, "compact")])
    assert overrides(broker, topic_name) == {"cleanup.policy": ["delete", "compact"]}
    incremental(broker, TOPIC, topic_name, [("cleanup.policy", SUBTRACT, "delete")])
    assert overrides(broker, topic_name) == {"cleanup.policy": ["compact"]}
    assert broker.services.replicas.get(topic_name, 0).config.cleanup_policy == ["compact"]


def test_incremental_append_to_non_list(broker: EmbeddedBroker, topic_name: str) -> None:
    create(broker, topic_name)
    result = incremental(broker, TOPIC, topic_name, [("retention.ms", APPEND, "5")])
    assert result.error_code == ErrorCode.invalid_config
    assert result.error_message == ("Can't APPEND to key retention.ms because its type is "
                                    "not LIST.")


def test_incremental_invalid_value_and_unknown_topic(broker: EmbeddedBroker,
                                                     topic_name: str) -> None:
    create(broker, topic_name)
    bad = incremental(broker, TOPIC, topic_name, [("segment.bytes", SET, "3")])
    assert bad.error_code == ErrorCode.invalid_config
    assert bad.error_message == ("Invalid value 3 for configuration segment.bytes: Value must "
                                 "be at least 14")
    missing = incremental(broker, TOPIC, topic_name + "-missing", [("retention.ms", SET, "1")])
    assert missing.error_code == ErrorCode.unknown_topic_or_partition
    null = incremental(broker, TOPIC, topic_name, [("retention.ms", SET, None)])
    assert null.error_code == ErrorCode.invalid_request
    unknown_op = incremental(broker, TOPIC, topic_name, [("retention.ms", 9, "1")])
    assert unknown_op.error_code == ErrorCode.invalid_request
    assert overrides(broker, topic_name) == {}


def test_incremental_validate_only(broker: EmbeddedBroker, topic_name: str) -> None:
    create(broker, topic_name)
    result = incremental(broker, TOPIC, topic_name, [("retention.ms", SET, "1")],
                         validate_only=True)
    assert result.error_code == ErrorCode.none
    assert overrides(broker, topic_name) == {}


def test_incremental_broker_configs(fresh_broker: EmbeddedBroker, topic_name: str) -> None:
    broker = fresh_broker
    create(broker, topic_name)
    node = str(broker.services.node_id)
    resource = ConfigResource(ResourceType.BROKER, node, incremental_configs=[
        ConfigEntry("log.segment.bytes", "500000", incremental_operation=AlterConfigOpType.SET),
    ])
    admin(broker).incremental_alter_configs([resource])[resource].result(TIMEOUT)
    # Addressed by node id: this broker's own config (Kafka's DYNAMIC_BROKER_CONFIG),
    # over the cluster-wide default.
    assert broker.services.config.dynamic_broker == {"log.segment.bytes": 500000}
    assert broker.services.config.dynamic == {}
    assert broker.services.replicas.get(topic_name, 0).log.config.segment_bytes == 500000
    own = entries(describe(broker, BROKER, node, ["log.segment.bytes"]))["log.segment.bytes"]
    assert own.config_source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    result = incremental(broker, BROKER, "", [("log.cleanup.policy", APPEND, "compact"),
                                              ("log.segment.bytes", SET, "600000")])
    assert result.error_code == ErrorCode.none
    assert broker.services.config.dynamic == {"log.cleanup.policy": ["delete", "compact"],
                                              "log.segment.bytes": 600000}
    # The broker's own value still wins; deleting it leaves the default's.
    assert broker.services.replicas.get(topic_name, 0).log.config.segment_bytes == 500000
    own = entries(describe(broker, BROKER, node, ["log.segment.bytes"],
                           synonyms=True))["log.segment.bytes"]
    assert [(s.source, s.value) for s in own.synonyms] == [
        (ConfigSource.DYNAMIC_BROKER_CONFIG.value, "500000"),
        (ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value, "600000"),
        (ConfigSource.DEFAULT_CONFIG.value, "1073741824")]
    assert incremental(broker, BROKER, node, [("log.segment.bytes", DELETE, None)]
                       ).error_code == ErrorCode.none
    assert broker.services.config.dynamic_broker == {}
    assert broker.services.replicas.get(topic_name, 0).log.config.segment_bytes == 600000
    assert incremental(broker, BROKER, "", [("log.segment.bytes", DELETE, None)]
                       ).error_code == ErrorCode.none
    assert broker.services.replicas.get(topic_name, 0).config.cleanup_policy == [
        "delete", "compact"]
    not_list = incremental(broker, BROKER, "", [("message.max.bytes", SUBTRACT, "1")])
    assert (not_list.error_code, not_list.error_message) == (
        ErrorCode.invalid_request,
        "Config value subtract is not allowed for config key: message.max.bytes")
    read_only = incremental(broker, BROKER, "", [("listeners", SET, "PLAINTEXT://:1")])
    assert read_only.error_code == ErrorCode.invalid_request
    forget(broker)


def test_incremental_broker_logger(broker: EmbeddedBroker) -> None:
    node = str(broker.services.node_id)
    logger = logging.getLogger("strom.broker.handlers")
    before = logger.level
    try:
        assert incremental(broker, BROKER_LOGGER, node,
                           [("strom.broker.handlers", SET, "DEBUG")]).error_code == 0
        assert logger.level == logging.DEBUG
        described = entries(describe(broker, BROKER_LOGGER, node, ["strom.broker.handlers"]))
        assert described["strom.broker.handlers"].value == "DEBUG"
        assert incremental(broker, BROKER_LOGGER, node,
                           [("strom.broker.handlers", DELETE, None)]).error_code == 0
        assert logger.level == logging.NOTSET
    finally:
        logger.setLevel(before)
    unknown = incremental(broker, BROKER_LOGGER, node, [("no.such.logger", SET, "INFO")])
    assert (unknown.error_code, unknown.error_message) == (
        ErrorCode.invalid_config, "Logger no.such.logger does not exist!")
    bad_level = incremental(broker, BROKER_LOGGER, node, [("root", SET, "LOUD")])
    assert bad_level.error_code == ErrorCode.invalid_config
    root = incremental(broker, BROKER_LOGGER, node, [("root", DELETE, None)])
    assert (root.error_code, root.error_message) == (
        ErrorCode.invalid_request, "Removing the log level of the root logger is not allowed")
    append = incremental(broker, BROKER_LOGGER, node, [("root", APPEND, "INFO")])
    assert append.error_code == ErrorCode.invalid_request


def test_invalid_topic_names(broker: EmbeddedBroker) -> None:
    described = describe(broker, TOPIC, "bad/name")
    assert described.error_code == ErrorCode.invalid_topic_exception
    assert "illegal" in described.error_message
    altered = incremental(broker, TOPIC, "bad/name", [("retention.ms", SET, "1")])
    assert altered.error_code == ErrorCode.invalid_topic_exception
    default = legacy_alter(broker, TOPIC, "", {"retention.ms": "1"})
    assert (default.error_code, default.error_message) == (
        ErrorCode.invalid_request, "Default topic resources are not allowed.")


def test_custom_dynamic_broker_configs_are_kept(fresh_broker: EmbeddedBroker) -> None:
    # Kafka stores dynamic broker configs it does not know (for plugins) and
    # describes them as sensitive, having no type for them.
    broker = fresh_broker
    result = incremental(broker, BROKER, "", [("my.plugin.setting", SET, "42")])
    assert result.error_code == ErrorCode.none
    assert broker.services.config.dynamic == {"my.plugin.setting": "42"}
    entry = entries(describe(broker, BROKER, ""))["my.plugin.setting"]
    assert (entry.value, entry.is_sensitive) == (None, True)
    assert entry.config_source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
    assert incremental(broker, BROKER, "", [("my.plugin.setting", DELETE, None)]).error_code == 0
    assert broker.services.config.dynamic == {}
