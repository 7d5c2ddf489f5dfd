"""A single-node broker with PLAINTEXT listeners loads no TLS, SASL, inter-broker
or cluster-mode code, nor the group coordinator's through its handlers
(issue 19): those load when the configuration or a request needs them
(strom/broker/server.py: listener set-up and cluster mode;
strom/broker/coordinators.py)."""

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
    "strom.security.tls", "strom.security.principal_mapping",
    "strom.security.sasl.authenticator", "strom.security.sasl.client",
    "strom.security.sasl.settings", "strom.security.sasl.oauthbearer",
    "strom.broker.peer_client", "strom.broker.replica_fetcher",
    "strom.broker.alter_partition_manager", "strom.broker.share.manager",
    "strom.cluster.etcd_store", "strom.cluster.etcd_client", "aetcd",
    # The group coordinator, started on first use (a consumer without a group here).
    "strom.coordinator.group.service", "strom.coordinator.group.records",
    "strom.coordinator.group.share_protocol", "strom.coordinator.group.streams",
    "strom.coordinator.group.share_offsets",
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
