"""GROUP configs in a two-broker cluster: set through the broker that is not
the controller (forwarded), then every broker describes the group's value
from its own image (GroupConfigRecords in etcd's metadata log)."""

from __future__ import annotations

from pathlib import Path

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from tests.broker.raw_client import RawClient
from tests.cluster.brokers import WAIT, controller_and_other, registered_brokers
from tests.cluster.etcd_process import EtcdCluster
from tests.interop.clients import wait_until

SESSION = "consumer.session.timeout.ms"


def _described(bootstrap: str) -> str | None:
    with RawClient(bootstrap, timeout=WAIT) as client:
        response = client.send(ApiKey.DESCRIBE_CONFIGS, 4, {
            "resources": [{"resource_type": 32, "resource_name": "shared",
                           "configuration_keys": [SESSION]}],
            "include_synonyms": False, "include_documentation": False})
    (entry,) = response.results[0].configs
    return str(entry.value)


def test_group_config_set_through_any_broker_is_seen_by_all(
        tmp_path: Path, etcd: EtcdCluster) -> None:
    with registered_brokers(tmp_path, etcd) as started:
        controller, other = controller_and_other(started)
        with RawClient(other.bootstrap, timeout=WAIT) as client:
            response = client.send(ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, {
                "validate_only": False, "resources": [
                    {"resource_type": 32, "resource_name": "shared", "configs": [
                        {"name": SESSION, "config_operation": 0, "value": "55000"}]}]})
        assert response.responses[0].error_code == ErrorCode.none, response
        for broker in (other, controller):
            wait_until(lambda b=broker: _described(b.bootstrap) == "55000", WAIT,
                       what="the group's config on every broker")
