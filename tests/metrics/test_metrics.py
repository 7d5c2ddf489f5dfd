"""/metrics of a real broker: counters move by what clients did.

A broker with its HTTP listener on; confluent-kafka produces, consumes and
commits; the scrape must show exactly those records and bytes, the requests
by API, an error by its Kafka name, and a group's lag rising and falling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.protocol.records import RecordSpec, build_batch
from strom.testing import EmbeddedBroker
from tests.metrics.scrape import Scrape, get, scrape, wait_for
from tests.wire import WireClient, metadata_request, produce_request

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    data = tmp_path_factory.mktemp("metrics")
    with EmbeddedBroker(data, overrides={"strom.http.listener": "http://127.0.0.1:0"}) as b:
        yield b


def create_topic(broker: EmbeddedBroker, name: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=30)


def produce(broker: EmbeddedBroker, topic: str, count: int, size: int = 100) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all",
                         "linger.ms": 0})
    for i in range(count):
        producer.produce(topic, value=b"v" * size, key=str(i).encode(), partition=0)
        producer.poll(0)
    assert producer.flush(30) == 0


def consume(broker: EmbeddedBroker, topic: str, count: int) -> None:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"read-{topic}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = 0
    try:
        for _ in range(200):
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                got += 1
            if got == count:
                return
    finally:
        consumer.close()
    pytest.fail(f"consumed {got} of {count}")


def test_produced_and_fetched_records_and_bytes(broker: EmbeddedBroker) -> None:
    base = broker.http_url
    create_topic(broker, "m-io")
    before = scrape(base)
    produce(broker, "m-io", 25)
    after = scrape(base)
    assert after.value("strom_topic_messages_in_total", topic="m-io") == 25
    # Batches are stored as sent: bytes in are the log's bytes.
    bytes_in = after.value("strom_topic_bytes_in_total", topic="m-io")
    assert bytes_in == after.value("strom_log_size_bytes", topic="m-io", partition="0")
    assert bytes_in >= 25 * 100
    assert after.value("strom_log_end_offset", topic="m-io", partition="0") == 25
    assert after.value("strom_log_segments", topic="m-io", partition="0") == 1
    produced = (after.value("strom_request_duration_seconds_count", api="Produce")
                - before.value("strom_request_duration_seconds_count", api="Produce"))
    assert 1 <= produced <= 25
    # acks=all fsyncs (strom.acks.all.fsync): the flusher's histogram moved.
    assert after.value("strom_log_flush_duration_seconds_count") > \
        before.value("strom_log_flush_duration_seconds_count")
    consume(broker, "m-io", 25)
    fetched = scrape(base)
    assert fetched.value("strom_topic_bytes_out_total", topic="m-io") >= bytes_in
    assert fetched.value("strom_request_duration_seconds_count", api="Fetch") > 0
    # Histogram buckets are cumulative and end in the count.
    assert fetched.value("strom_request_duration_seconds_bucket", api="Produce", le="+Inf") == \
        fetched.value("strom_request_duration_seconds_count", api="Produce")


def test_failed_request_counted_by_error_name(broker: EmbeddedBroker) -> None:
    create_topic(broker, "m-dup")
    before = scrape(broker.http_url).value("strom_request_errors_total", api="CreateTopics",
                                           error="TOPIC_ALREADY_EXISTS")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    with pytest.raises(Exception, match="already exists"):
        admin.create_topics([NewTopic("m-dup", 1, 1)])["m-dup"].result(timeout=30)
    after = scrape(broker.http_url)
    assert after.value("strom_request_errors_total", api="CreateTopics",
                       error="TOPIC_ALREADY_EXISTS") == before + 1
    assert after.types["strom_request_errors"] == "counter"


def test_group_lag_rises_and_falls(broker: EmbeddedBroker) -> None:
    base = broker.http_url
    create_topic(broker, "m-lag")
    produce(broker, "m-lag", 10)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "lagging",
                         "enable.auto.commit": False})
    labels = {"group": "lagging", "topic": "m-lag", "partition": "0"}

    def lag(result: Scrape) -> float:
        return result.value("strom_consumer_group_lag", **labels)

    def has_lag(expected: int) -> Callable[[Scrape], bool]:
        return lambda result: (result.value("strom_consumer_group_committed_offset", **labels)
                               > 0 and lag(result) == expected)

    try:
        consumer.commit(offsets=[TopicPartition("m-lag", 0, 4)], asynchronous=False)
        wait_for(base, has_lag(6))
        produce(broker, "m-lag", 5)  # the group falls further behind
        wait_for(base, has_lag(11))
        consumer.commit(offsets=[TopicPartition("m-lag", 0, 15)], asynchronous=False)
        caught_up = wait_for(base, lambda r: r.value(
            "strom_consumer_group_committed_offset", **labels) == 15)
        assert lag(caught_up) == 0
    finally:
        consumer.close()


def test_connections_and_runtime_metrics(broker: EmbeddedBroker) -> None:
    result = scrape(broker.http_url)
    assert result.value("strom_partitions") >= 1
    assert result.value("strom_under_replicated_partitions") == 0
    assert result.value("strom_offline_partitions") == 0
    assert "strom_connections" in result.types
    assert result.value("process_resident_memory_bytes") > 0
    assert result.value("process_open_fds") > 0
    # The loop-lag probe ticks 4 times a second.
    wait_for(broker.http_url, lambda r: r.value("strom_event_loop_lag_seconds_count") >= 2)
    assert result.types["strom_gc_pause_seconds"] == "histogram"
    assert result.value("strom_transactions_completed_total", result="commit") == 0


def test_health(broker: EmbeddedBroker) -> None:
    status, body = get(broker.http_url + "/health/live")
    assert status == 200 and '"ok"' in body
    status, body = get(broker.http_url + "/health/ready")
    assert (status, body.strip()) == (200, '{"status": "ready"}')
    status, _ = get(broker.http_url + "/no/such/page")
    assert status == 404


def test_errors_of_admin_responses_counted(broker: EmbeddedBroker) -> None:
    # IncrementalAlterConfigs answers with kio's message objects, not dicts.
    create_topic(broker, "m-conf")
    labels = {"api": "IncrementalAlterConfigs", "error": "INVALID_CONFIG"}
    before = scrape(broker.http_url).value("strom_request_errors_total", **labels)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    resource = ConfigResource("topic", "m-conf", incremental_configs=[
        ConfigEntry("no.such.config", "1",
                    incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException):
        admin.incremental_alter_configs([resource])[resource].result(timeout=30)
    assert scrape(broker.http_url).value("strom_request_errors_total", **labels) == before + 1


def test_produce_partition_errors_counted(broker: EmbeddedBroker) -> None:
    create_topic(broker, "m-perr")
    labels = {"api": "Produce", "error": "UNKNOWN_TOPIC_OR_PARTITION"}
    before = scrape(broker.http_url).value("strom_request_errors_total", **labels)
    batch = build_batch([RecordSpec(value=b"v")])
    with WireClient(broker.bootstrap) as client:
        response = client.request(ApiKey.PRODUCE, 9, produce_request("m-perr", batch,
                                                                      partition=7))
    assert response.responses[0].partition_responses[0].error_code == \
        ErrorCode.unknown_topic_or_partition
    after = scrape(broker.http_url)
    assert after.value("strom_request_errors_total", **labels) == before + 1
    assert after.value("strom_topic_messages_in_total", topic="m-perr") == 0


def test_requests_in_flight_and_connections(broker: EmbeddedBroker) -> None:
    base = broker.http_url
    idle = scrape(base)
    broker.inject_delay(ApiKey.METADATA, 2.0)
    try:
        with WireClient(broker.bootstrap) as client:
            client.send(ApiKey.METADATA, 12, metadata_request("m-flight"))
            busy = wait_for(base, lambda r: r.value("strom_requests_in_flight") >= 1)
            assert busy.value("strom_connections") >= idle.value("strom_connections") + 1
            client.receive(ApiKey.METADATA, 12)
        wait_for(base, lambda r: r.value("strom_requests_in_flight") == 0)
    finally:
        broker.clear_faults()


def test_transactions_counted_by_result(broker: EmbeddedBroker) -> None:
    create_topic(broker, "m-txn")
    base = broker.http_url
    before = scrape(base)

    def completed(result: Scrape, outcome: str) -> float:
        return result.value("strom_transactions_completed_total", result=outcome) \
            - before.value("strom_transactions_completed_total", result=outcome)

    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "m-txn"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce("m-txn", b"kept")
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce("m-txn", b"dropped")
    # Sent, so the partition joins the transaction (librdkafka sends no EndTxn
    # for a transaction without partitions).
    assert producer.flush(30) == 0
    producer.abort_transaction(30)
    wait_for(base, lambda r: completed(r, "commit") == 1 and completed(r, "abort") == 1)
