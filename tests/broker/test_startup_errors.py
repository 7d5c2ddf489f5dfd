"""What an operator sees when `strom serve` cannot start: one line naming the
setting or file and the fix, exit code 2, never a traceback; and a start that
works stays quiet (no false crash warning, one INFO line per coordinator).

Each case failed at 0098471: tracebacks with exit 1 (listener, port, corrupt
files), a broker serving plaintext on an SSL/SASL listener, a second broker
starting on a data directory in use, no `strom --version`.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.process import StromProcess, free_port

TIMEOUT = 30


def serve(data: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    """`strom serve` expected to refuse to start: its exit code and output."""
    args = [sys.executable, "-m", "strom", "serve", "--override", f"log.dirs={data}"]
    if not any(o.startswith("listeners=") for o in overrides):
        args += ["--override", f"listeners=PLAINTEXT://127.0.0.1:{free_port()}"]
    for item in overrides:
        args += ["--override", item]
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"strom serve {' '.join(overrides)} started instead of refusing")


def assert_refused(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    (line,) = [line for line in result.stderr.splitlines() if "error" in line]
    for text in expected:
        assert text in line, line


@pytest.mark.parametrize(("listeners", "protocol_map", "expected"), [
    ("SSL://127.0.0.1:{port}", None, "listener SSL serves TLS but has no key: set "
     "ssl.keystore.location"),
    # SASL listeners with Kafka's default sasl.enabled.mechanisms (GSSAPI).
    ("SASL_PLAINTEXT://127.0.0.1:{port}", None, "GSSAPI (Kerberos, Kafka's default) is not "
     "supported"),
    ("SASL_SSL://127.0.0.1:{port}", None, "listener SASL_SSL serves TLS but has no key"),
    ("EXTERNAL://127.0.0.1:{port}", "EXTERNAL:SSL", "listener EXTERNAL serves TLS but has no "
     "key"),
    ("PLAINTEXT://127.0.0.1:{port},SECURE://127.0.0.1:1", "PLAINTEXT:PLAINTEXT,SECURE:SASL_SSL",
     "listener SECURE serves TLS but has no key"),
    ("INTERNAL://127.0.0.1:{port}", None, "no security protocol defined for listener INTERNAL"),
    ("garbage", None, "listeners: cannot parse 'garbage'"),
    ("PLAINTEXT://127.0.0.1:70000", None, "cannot parse"),
])
def test_listener_refused(tmp_path: Path, listeners: str, protocol_map: str | None,
                          expected: str) -> None:
    overrides = [f"listeners={listeners.format(port=free_port())}"]
    if protocol_map:
        overrides.append(f"listener.security.protocol.map={protocol_map}")
    assert_refused(serve(tmp_path / "data", *overrides), expected)


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve(tmp_path / "data", f"listeners=PLAINTEXT://127.0.0.1:{port}")
    assert_refused(result, f"cannot listen on 127.0.0.1:{port}", "address already in use")


def test_second_broker_on_a_data_directory_in_use(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = StromProcess(data)
    first.start()
    try:
        marker = data / ".kafka_cleanshutdown"
        assert not marker.exists()
        assert_refused(serve(data), f"{data}/.lock", "another broker")
        assert not marker.exists(), "the second broker wrote into the live directory"
        assert first.proc is not None and first.proc.poll() is None
        assert first.terminate() == 0
        first.start()  # the lock went with the first process
    finally:
        first.stop()


def _stopped_broker(data: Path) -> None:
    broker = StromProcess(data)
    broker.start()
    assert broker.terminate() == 0


def test_garbage_meta_properties(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _stopped_broker(data)
    (data / "meta.properties").write_bytes(b"\xff\xfe\x00\x81garbage")
    assert_refused(serve(data), f"{data}/meta.properties is damaged",
                   "restore it from a backup")


@pytest.mark.parametrize("damage", [b'{"version": 1, "records": [{"ty', b"\xff\xfe",
                                    b'{"version": 1, "records": [{"type": "nope"}]}'])
def test_damaged_strom_metadata_json(tmp_path: Path, damage: bytes) -> None:
    data = tmp_path / "data"
    _stopped_broker(data)
    (data / "strom-metadata.json").write_bytes(damage)
    assert_refused(serve(data), f"{data}/strom-metadata.json is damaged",
                   "restore it from a backup")


def test_missing_strom_metadata_json_with_records_refuses_to_start(tmp_path: Path) -> None:
    """Without the metadata file every log looks like a deleted topic's; at
    0098471 the broker started and deleted them all."""
    from confluent_kafka import Producer

    data = tmp_path / "data"
    broker = StromProcess(data)
    broker.start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic("kept", 1)])["kept"].result(TIMEOUT)
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        producer.produce("kept", b"record")
        assert producer.flush(TIMEOUT) == 0
        assert broker.terminate() == 0
    finally:
        broker.stop()
    (data / "strom-metadata.json").unlink()
    assert_refused(serve(data), f"{data}/strom-metadata.json is missing",
                   "restore the file from backup")
    segments = list((data / "kept-0").glob("*.log"))
    assert segments and segments[0].stat().st_size > 0


def test_a_start_is_quiet(tmp_path: Path) -> None:
    """A new data directory is not a crash, and a restart with both internal
    topics logs one INFO line per coordinator, not one per partition."""
    data = tmp_path / "data"
    broker = StromProcess(data, overrides={"offsets.topic.num.partitions": "20"})
    broker.start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic("t", 1)])["t"].result(TIMEOUT)
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g",
                             "enable.auto.commit": False})
        consumer.commit(offsets=[TopicPartition("t", 0, 1)], asynchronous=False)
        consumer.close()
        assert broker.terminate() == 0
        first_start = broker.log_path.read_text()
        assert "not shut down cleanly" not in first_start
        broker.start()
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g"})
        (committed,) = consumer.committed([TopicPartition("t", 0)], timeout=TIMEOUT)
        consumer.close()
        assert committed.offset == 1  # the coordinator has loaded
        assert broker.terminate() == 0
    finally:
        broker.stop()
    second_start = broker.log_path.read_text()[len(first_start):]
    info = [line for line in second_start.splitlines() if " INFO " in line]
    assert not [line for line in info if "loaded partition " in line], info
    assert len([line for line in info if "__consumer_offsets: loaded 20 partition" in line]) == 1
    assert len(info) < 10, info


def test_version() -> None:
    result = subprocess.run([sys.executable, "-m", "strom", "--version"], capture_output=True,
                            text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("strom ") and result.stdout.split()[1][0].isdigit()


def test_a_single_node_needs_no_etcd_client() -> None:
    """aetcd (gRPC) is the optional `cluster` extra: a plain install must start a
    broker, and a single node must not pay its import. (The first wiring of the
    etcd store imported it at module level and a plain install could not serve.)"""
    code = ("import sys; sys.modules['aetcd'] = None  # as if not installed\n"
            "import strom.broker.server, strom.cli.serve\n"
            "assert not [m for m in sys.modules if m.startswith('grpc')], 'grpc imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
