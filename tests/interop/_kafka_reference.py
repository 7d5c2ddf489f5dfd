"""A real Apache Kafka 4.x broker for checking the interop tests against Kafka.

Dev aid, not part of the default run. Starts a single-node KRaft broker
(combined broker+controller) from the jars that ``scripts/fetch-kafka.sh``
puts in ``.cache/kafka/libs``, configured like the strom test broker
(``auto.create.topics.enable=true``, ``num.partitions=1``).

Run the interop suite against it, either with a broker started here::

    .venv/bin/python tests/interop/_kafka_reference.py --port 19092 &
    STROM_TEST_BOOTSTRAP=127.0.0.1:19092 .venv/bin/pytest tests/interop

or let the interop conftest start one for the session::

    STROM_TEST_BOOTSTRAP=kafka .venv/bin/pytest tests/interop
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KAFKA_TOOL = REPO / "scripts" / "kafka-tool"

SERVER_LOG4J = """\
status = error
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.file.ref = FILE
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _can_connect(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class KafkaReference:
    bootstrap: str
    data_dir: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start(
    data_dir: Path,
    port: int | None = None,
    extra: dict[str, str] | None = None,
    timeout: float = 90.0,
) -> KafkaReference:
    """Format a KRaft log dir under ``data_dir`` and start Kafka; wait until it serves."""
    port = port or free_port()
    if _can_connect(port):
        raise RuntimeError(f"port {port} is already in use")
    cport = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    logs = data_dir / "kraft-logs"
    props: dict[str, str] = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{cport}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(logs),
        "num.partitions": "1",
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
    }
    props.update(extra or {})
    config = data_dir / "server.properties"
    config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    log = data_dir / "server.log"
    log4j = data_dir / "log4j2.properties"
    log4j.write_text(SERVER_LOG4J.format(log=log, level="INFO"))
    env = dict(os.environ)
    env["KAFKA_TOOL_LOG4J"] = str(log4j)

    if not (logs / "meta.properties").exists():
        # Like Kafka's Uuid.randomUuid, never an id starting with '-': kafka-storage's
        # argument parser would read it as an option (1 run in 64 failed that way).
        cluster_id = "-"
        while cluster_id.startswith("-"):
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        subprocess.run(
            [str(KAFKA_TOOL), "storage", "format", "--standalone", f"--cluster-id={cluster_id}",
             "-c", str(config)],
            check=True, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            timeout=120,
        )
    env["KAFKA_TOOL_JAVA_OPTS"] = "-Xms256m -Xmx1g -XX:+UseG1GC"
    out = (data_dir / "stdout.log").open("ab")
    process = subprocess.Popen(
        [str(KAFKA_TOOL), "server", str(config)],
        env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
    )
    ref = KafkaReference(f"127.0.0.1:{port}", data_dir, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Kafka exited with {process.returncode}; see {data_dir}")
        if _can_connect(port) and _serves_metadata(ref.bootstrap):
            return ref
        time.sleep(0.2)
    ref.stop()
    raise RuntimeError(f"Kafka did not start within {timeout}s; see {data_dir}")


def _serves_metadata(bootstrap: str) -> bool:
    import logging

    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap},
                        logger=logging.getLogger("rdkafka.reference"))
    try:
        md = admin.list_topics(timeout=2)
        return len(md.brokers) > 0
    except Exception:
        return False


@contextlib.contextmanager
def running(data_dir: Path | None = None) -> Iterator[KafkaReference]:
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kafka-ref-")))
        ref = start(data_dir)
        try:
            yield ref
        finally:
            ref.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--dir", type=Path, default=None, help="data dir (default: a temp dir)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        data_dir = args.dir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="kafka-ref-"))
        )
        ref = start(data_dir, port=args.port)
        print(f"STROM_TEST_BOOTSTRAP={ref.bootstrap}  (data: {data_dir})", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: ref.stop())
        try:
            ref.process.wait()
        except KeyboardInterrupt:
            pass
        finally:
            ref.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
