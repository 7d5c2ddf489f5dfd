"""A single-node broker with PLAINTEXT listeners loads no TLS, SASL, inter-broker
or cluster-mode code, nor the group, share or transaction coordinators' code
through its handlers, nor log compaction's cleaning code (issue 19): those
load when the configuration or a request needs them (strom/broker/server.py:
listener set-up and cluster mode; strom/broker/coordinators.py; the
controller and transaction channels and forwarding.py: a request to another
broker; strom/storage/cleaner/__init__.py: the first log to clean)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from confluent_kafka import Producer
from kafka import KafkaConsumer, TopicPartition

from tests.process import free_port

#: Modules (and their submodules) a PLAINTEXT-only single node never needs.
NOT_NEEDED = (
    "cryptography", "jwt", "scramp", "asn1crypto",
    # crc32c's package __init__ imports importlib.metadata for its version
    # (strom/protocol/records/crc.py loads its C extension alone).
    "crc32c", "importlib.metadata",
    "strom.security.tls", "strom.security.principal_mapping", "strom.security.sasl.scram",
    "strom.security.sasl.authenticator", "strom.security.sasl.client",
    "strom.security.sasl.settings", "strom.security.sasl.oauthbearer",
    "strom.broker.peer_client", "strom.broker.replica_fetcher",
    "strom.broker.alter_partition_manager", "strom.broker.share.manager",
    "strom.cluster.etcd_store", "strom.cluster.etcd_client", "aetcd",
    # What a single node never sends another broker: the channels and the
    # forwarder import these schemas with their first request.
    "kio.schema.create_topics.v7", "kio.schema.allocate_producer_ids",
    "kio.schema.alter_partition", "kio.schema.add_partitions_to_txn",
    "kio.schema.write_txn_markers", "kio.schema.envelope",
    "kio.schema.default_principal_data", "strom.broker.envelope_data",
    # The group coordinator, started on first use (a consumer without a group
    # here), with the value types its handlers hand it and the coordinators'
    # common runtime.
    "strom.coordinator.group", "strom.coordinator.runtime",
    # The share coordinator and share partitions (the first share request),
    # and group configs (the first request about a group's configs).
    "strom.coordinator.share.records", "strom.coordinator.share.shard",
    "strom.coordinator.share.persister", "strom.broker.share.share_partition",
    "strom.broker.group_configs",
    # ctypes: syncfs(2) for big batches of new logs, prctl(2) for
    # strom.processes' workers; looked up when first needed.
    "ctypes",
    # Fast paths read Produce requests and write their responses: no kio
    # schema of Produce, not even for the request header's version.
    "kio.schema.produce",
    # Log compaction's cleaning code (the first log to clean; the manager,
    # which chooses it, is loaded).
    "strom.storage.cleaner.cleaner", "strom.storage.cleaner.snapshot",
    "strom.storage.cleaner.offset_map", "strom.storage.cleaner.records",
    "strom.storage.cleaner.transactions", "strom.storage.cleaner.segment_writer",
)

# The broker runs as `strom serve` does; at exit it writes what it imported.
# As deployed: kio loads hypothesis (a test tool, which imports
# importlib.metadata) whenever it is installed.
_SERVE = """\
import atexit, sys
sys.modules["hypothesis"] = None
from strom.cli.main import main
atexit.register(lambda: open(sys.argv[1], "w").write("\\n".join(sorted(sys.modules))))
main(["serve", *sys.argv[2:]])
"""


def _loaded_by_a_broker_that_served(tmp_path: Path) -> set[str]:
    port = free_port()
    dump = tmp_path / "modules.txt"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE, str(dump),
         "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
         "--override", f"log.dirs={tmp_path / 'data'}", "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("strom: serving on"), line + proc.stdout.read()
        bootstrap = f"127.0.0.1:{port}"
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
        producer.produce("plain", b"v")
        assert producer.flush(30) == 0
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                 enable_auto_commit=False, consumer_timeout_ms=30_000)
        try:
            consumer.assign([TopicPartition("plain", 0)])
            consumer.seek_to_beginning()
            assert next(consumer).value == b"v"
        finally:
            consumer.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return set(dump.read_text().split())


def test_a_plaintext_single_node_loads_no_security_or_cluster_code(tmp_path: Path) -> None:
    loaded = _loaded_by_a_broker_that_served(tmp_path)
    assert "strom.broker.server" in loaded and "strom.broker.handlers.produce" in loaded
    unexpected = [name for name in NOT_NEEDED
                  if any(m == name or m.startswith(name + ".") for m in loaded)]
    assert not unexpected, unexpected
