"""Fixtures for the real-client interop tests.

All tests talk to ``bootstrap``: the in-process strom broker of
``tests/conftest.py`` (fixture ``broker``), unless ``STROM_TEST_BOOTSTRAP`` is
set: ``host:port`` of a running broker (e.g. Apache Kafka, to check that the
tests assert Kafka's behaviour), ``kafka`` to start a reference Apache Kafka
for the session (see ``_kafka_reference.py``), or ``cluster`` to start a
three-broker strom cluster on etcd for the session through
scripts/local-cluster.sh (``make interop-cluster``; topics are created at the
cluster's default replication factor, 3).
"""

from __future__ import annotations

import gc
import logging
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .clients import KAFKA_LIBS, REPO, wait_until


@pytest.fixture(scope="session")
def bootstrap(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
              ) -> Iterator[str]:
    env = os.environ.get("STROM_TEST_BOOTSTRAP", "").strip()
    if env == "kafka":
        from . import _kafka_reference

        ref = _kafka_reference.start(tmp_path_factory.mktemp("kafka-reference"))
        try:
            yield ref.bootstrap
        finally:
            ref.stop()
    elif env == "cluster":
        from tests.cluster.etcd_process import etcd_binary
        from tests.cluster.local_cluster import LocalCluster

        binary = etcd_binary()
        if binary is None:
            pytest.fail("STROM_TEST_BOOTSTRAP=cluster needs etcd: run scripts/install-etcd.sh")
        cluster = LocalCluster(tmp_path_factory.mktemp("strom-cluster"), binary)
        try:
            cluster.run("start-all", timeout=180)
            yield cluster.bootstrap()
        finally:
            cluster.stop_all()
    elif env:
        yield env
    else:
        try:
            broker = request.getfixturevalue("broker")
        except pytest.FixtureLookupError:
            pytest.fail("no broker: tests/conftest.py defines no `broker` fixture "
                        "and STROM_TEST_BOOTSTRAP is not set")
        yield broker.bootstrap


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    """A fresh topic name: the shared ``topic_name`` fixture where there is one."""
    try:
        return str(request.getfixturevalue("topic_name"))
    except pytest.FixtureLookupError:
        name = re.sub(r"[^a-zA-Z0-9._-]", "_", request.node.name)[:180]
        return f"it-{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def admin(bootstrap: str) -> Iterator[Any]:
    """confluent-kafka's AdminClient; its librdkafka log goes to Python logging (so a
    broker stopping at the end of the session does not spray reconnect errors)."""
    from confluent_kafka.admin import AdminClient

    client = AdminClient({"bootstrap.servers": bootstrap},
                         logger=logging.getLogger("rdkafka.admin"))
    yield client
    del client
    gc.collect()


def _partitions_ready(admin: Any, name: str, partitions: int) -> bool:
    md = admin.list_topics(name, timeout=5)
    t = md.topics.get(name)
    if t is None or t.error is not None or len(t.partitions) != partitions:
        return False
    return all(p.leader >= 0 and p.error is None for p in t.partitions.values())


@pytest.fixture
def create_topic(admin: Any) -> Callable[..., str]:
    """``create_topic(name, partitions=3, config={})``: create with confluent-kafka's
    AdminClient and wait until metadata shows every partition with a leader."""
    from confluent_kafka.admin import NewTopic

    def create(name: str, partitions: int = 3, config: dict[str, str] | None = None) -> str:
        fs = admin.create_topics(
            # -1: the broker's default.replication.factor (1 on a single node,
            # 3 on the local cluster).
            [NewTopic(name, num_partitions=partitions, replication_factor=-1,
                      config=config or {})],
            operation_timeout=30,
        )
        fs[name].result(timeout=30)
        wait_until(lambda: _partitions_ready(admin, name, partitions), 15,
                   what=f"metadata of {name} with {partitions} partitions")
        return name

    return create


def wait_topic_ready(admin: Any, name: str, partitions: int) -> None:
    wait_until(lambda: _partitions_ready(admin, name, partitions), 15,
               what=f"metadata of {name} with {partitions} partitions")


@pytest.fixture(scope="session")
def kcat() -> str:
    path = shutil.which("kcat")
    if path is None:
        pytest.skip("kcat is not installed (make system-deps, or apt-get install kcat)")
    return path


@pytest.fixture(scope="session")
def java_tools() -> Path:
    """Kafka's Java CLI tools: java on PATH and the jars in .cache/kafka/libs
    (fetched with scripts/fetch-kafka.sh on first use when Maven is there)."""
    if shutil.which("java") is None:
        pytest.skip("java is not installed (make system-deps)")
    if not list(KAFKA_LIBS.glob("kafka-tools-*.jar")):
        if shutil.which("mvn") is None:
            pytest.skip("Kafka jars missing and no mvn to fetch them (make kafka-jars)")
        proc = subprocess.run([str(REPO / "scripts" / "fetch-kafka.sh")], capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, timeout=600)
        if proc.returncode != 0:
            pytest.skip(f"scripts/fetch-kafka.sh failed: {proc.stderr[-500:]}")
    return KAFKA_LIBS


@pytest.fixture
def client_available(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``client_available(name)``: skip unless that client can run here."""

    def check(name: str) -> None:
        if name == "kcat":
            request.getfixturevalue("kcat")
        elif name == "java":
            request.getfixturevalue("java_tools")

    return check


def pytest_configure(config: pytest.Config) -> None:
    # kafka-python 3 loads its schemas with importlib.resources' legacy API
    config.addinivalue_line(
        "filterwarnings", "ignore:.*is deprecated. Use files\\(\\) instead:DeprecationWarning"
    )
