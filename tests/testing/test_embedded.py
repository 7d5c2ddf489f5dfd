"""The embedded broker for users' tests: fault injection and inspection."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka import Producer
from kio.schema.api_versions.v3.request import ApiVersionsRequest

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.protocol.records import RecordSpec, build_batch
from strom.testing import EmbeddedBroker
from tests.wire import WireClient, metadata_request, produce_request


def _produce_code(client: WireClient, topic: str, value: bytes) -> int:
    response = client.request(ApiKey.PRODUCE, 9, produce_request(
        topic, build_batch([RecordSpec(key=b"k", value=value)])))
    return int(response.responses[0].partition_responses[0].error_code)


def test_injected_errors_write_nothing(strom_broker: EmbeddedBroker) -> None:
    with WireClient(strom_broker.bootstrap) as client:
        client.request(ApiKey.METADATA, 12, metadata_request("orders"))
        strom_broker.inject_error("produce", ErrorCode.not_leader_or_follower, count=2)
        assert _produce_code(client, "orders", b"a") == ErrorCode.not_leader_or_follower
        assert _produce_code(client, "orders", b"b") == ErrorCode.not_leader_or_follower
        assert _produce_code(client, "orders", b"c") == ErrorCode.none
    assert [r.value for r in strom_broker.records("orders")] == [b"c"]


def test_client_retries_through_injected_errors(strom_broker: EmbeddedBroker) -> None:
    strom_broker.inject_error(ApiKey.PRODUCE, ErrorCode.not_leader_or_follower, count=3)
    producer = Producer({"bootstrap.servers": strom_broker.bootstrap, "retry.backoff.ms": 10})
    producer.produce("retried", key=b"k", value=b"once")
    assert producer.flush(30) == 0
    assert [r.value for r in strom_broker.records("retried")] == [b"once"]


def test_drop_and_close(strom_broker: EmbeddedBroker) -> None:
    request = ApiVersionsRequest(client_software_name="t", client_software_version="1")
    strom_broker.drop_responses("api_versions")
    with WireClient(strom_broker.bootstrap, timeout=0.5) as dropped:
        dropped.send(ApiKey.API_VERSIONS, 3, request)
        with pytest.raises(TimeoutError):
            dropped.read_frame()
        with WireClient(strom_broker.bootstrap) as other:
            assert other.request(ApiKey.API_VERSIONS, 3, request).error_code == 0
    strom_broker.close_connection_on(ApiKey.API_VERSIONS)
    with WireClient(strom_broker.bootstrap) as closed:
        closed.send(ApiKey.API_VERSIONS, 3, request)
        assert closed.is_closed_by_peer()


def test_delay(strom_broker: EmbeddedBroker) -> None:
    request = ApiVersionsRequest(client_software_name="t", client_software_version="1")
    strom_broker.inject_delay("api_versions", 0.3)
    with WireClient(strom_broker.bootstrap) as client:
        started = time.monotonic()
        assert client.request(ApiKey.API_VERSIONS, 3, request).error_code == 0
        assert time.monotonic() - started >= 0.3


def test_error_injection_refused_where_unsupported(strom_broker: EmbeddedBroker) -> None:
    with pytest.raises(ValueError, match="not supported"):
        strom_broker.inject_error("describe_configs", ErrorCode.unknown_server_error)


def test_records_and_restart_on_same_data(strom_broker: EmbeddedBroker) -> None:
    producer = Producer({"bootstrap.servers": strom_broker.bootstrap})
    for i in range(10):
        producer.produce("events", key=b"%d" % i, value=b"v%d" % i, headers=[("h", b"x")])
    assert producer.flush(30) == 0
    strom_broker.restart()
    records = strom_broker.records("events", 0)
    assert [r.offset for r in records] == list(range(10))
    assert records[3].key == b"3" and records[3].headers == (("h", b"x"),)


def test_apply_retention_on_demand(tmp_path: Path) -> None:
    with EmbeddedBroker(tmp_path, overrides={"log.retention.ms": "1",
                                              "log.segment.bytes": "200"}) as broker:
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0,
                             "batch.num.messages": 1})
        for i in range(20):
            producer.produce("old", value=b"x" * 50, timestamp=1000 + i)
            producer.flush(10)
        assert broker.apply_retention() > 0
        assert len(broker.records("old")) < 20


def test_committed_offsets(strom_broker: EmbeddedBroker) -> None:
    from confluent_kafka import Consumer, TopicPartition

    producer = Producer({"bootstrap.servers": strom_broker.bootstrap})
    for i in range(5):
        producer.produce("paid", value=b"%d" % i)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": strom_broker.bootstrap, "group.id": "billing",
                         "enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition("paid", 0, 3)], asynchronous=False)
    consumer.close()
    assert strom_broker.committed_offsets("billing") == {("paid", 0): 3}
    assert strom_broker.committed_offsets("nobody") == {}
