"""Transactions with Apache Kafka's Java client and tools: the transactional
producer of kafka-producer-perf-test (Kafka 4.4's client, which picks the
transaction version from ApiVersions), a read_committed console consumer, and
kafka-transactions (list, describe, describe-producers)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from strom.testing import EmbeddedBroker

from .clients import compile_java, run_kafka_tool
from .test_transactions import OVERRIDES, create

pytestmark = [pytest.mark.interop, pytest.mark.java]

TRANSACTIONS = "org.apache.kafka.tools.TransactionsCommand"


@pytest.fixture(autouse=True)
def _java(java_tools: Any) -> None:
    pass


@pytest.fixture(scope="module")
def jbroker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(tmp_path_factory.mktemp("txn-java"), overrides=OVERRIDES) as b:
        yield b


def test_java_transactional_producer_and_transactions_tool(jbroker: EmbeddedBroker) -> None:
    bootstrap = jbroker.bootstrap
    topic = create(bootstrap, f"jtxn-{uuid.uuid4().hex[:8]}", 1)
    tid = f"java-{uuid.uuid4().hex[:8]}"
    run_kafka_tool(
        "producer-perf", "--topic", topic, "--num-records", "300", "--record-size", "20",
        "--throughput", "-1", "--producer-props", f"bootstrap.servers={bootstrap}",
        "--transactional-id", tid, "--transaction-duration-ms", "20", timeout=120)
    consumed = run_kafka_tool(
        "console-consumer", "--bootstrap-server", bootstrap, "--topic", topic,
        "--from-beginning", "--max-messages", "300", "--timeout-ms", "30000",
        "--command-property", "isolation.level=read_committed", timeout=90)
    assert len([line for line in consumed.stdout.splitlines() if line]) == 300

    listed = run_kafka_tool(TRANSACTIONS, "--bootstrap-server", bootstrap, "list").stdout
    assert tid in listed, listed
    described = run_kafka_tool(TRANSACTIONS, "--bootstrap-server", bootstrap, "describe",
                               "--transactional-id", tid).stdout
    assert "CompleteCommit" in described, described
    header, row = (line.split() for line in described.splitlines()[:2])
    # Transaction version 2 (KIP-890 part 2): every committed transaction bumped the epoch.
    assert int(row[header.index("ProducerEpoch")]) >= 1, described
    producers = run_kafka_tool(TRANSACTIONS, "--bootstrap-server", bootstrap,
                               "describe-producers", "--topic", topic, "--partition",
                               "0").stdout
    assert "ProducerId" in producers, producers


def test_java_consume_transform_produce(jbroker: EmbeddedBroker, tmp_path: Any) -> None:
    import subprocess

    from confluent_kafka import Consumer, Producer, TopicPartition

    from .clients import KAFKA_LIBS
    from .test_transactions import read_all

    bootstrap = jbroker.bootstrap
    source = create(bootstrap, f"jsrc-{uuid.uuid4().hex[:8]}", 1)
    sink = create(bootstrap, f"jsink-{uuid.uuid4().hex[:8]}", 1)
    plain = Producer({"bootstrap.servers": bootstrap})
    for i in range(10):
        plain.produce(source, value=f"m{i}".encode(), partition=0)
    assert plain.flush(30) == 0
    compile_java("TxnPipeline", tmp_path)
    classpath = f"{KAFKA_LIBS}/*"
    group = f"jctp-{uuid.uuid4().hex[:8]}"
    proc = subprocess.run(
        ["java", "-cp", f"{tmp_path}:{classpath}", "TxnPipeline", bootstrap, source, sink,
         group, f"jtid-{uuid.uuid4().hex[:8]}", "10"],
        capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip().endswith("done"), proc.stdout + proc.stderr[-3000:]
    assert read_all(bootstrap, sink, 1, committed=True) == sorted(f"M{i}" for i in range(10))
    assert len(read_all(bootstrap, sink, 1, committed=False)) > 10  # the aborted ones
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        assert consumer.committed([TopicPartition(source, 0)], 30)[0].offset == 10
    finally:
        consumer.close()
