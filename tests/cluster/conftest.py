"""Fixtures for the cluster-mode tests: real etcd processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.brokers import controller_and_other, registered_brokers
from tests.cluster.etcd_process import EtcdCluster, etcd_binary
from tests.process import StromProcess


@pytest.fixture
def etcd_bin() -> str:
    binary = etcd_binary()
    if binary is None:
        pytest.skip("no etcd binary: run scripts/install-etcd.sh (make test does)")
    return binary


@pytest.fixture
def etcd(etcd_bin: str, tmp_path: Path) -> Iterator[EtcdCluster]:
    """One etcd member of the test's own."""
    cluster = EtcdCluster(etcd_bin, tmp_path, size=1)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def etcd3(etcd_bin: str, tmp_path: Path) -> Iterator[EtcdCluster]:
    """A three-member etcd cluster of the test's own."""
    cluster = EtcdCluster(etcd_bin, tmp_path, size=3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def two_brokers(etcd: EtcdCluster, tmp_path: Path) -> Iterator[list[StromProcess]]:
    """Brokers 1 and 2 on the test's etcd, both registered."""
    with registered_brokers(tmp_path, etcd) as started:
        yield started


@pytest.fixture
def roles(two_brokers: list[StromProcess]) -> tuple[StromProcess, StromProcess]:
    """(controller, other broker) of `two_brokers`."""
    return controller_and_other(two_brokers)
