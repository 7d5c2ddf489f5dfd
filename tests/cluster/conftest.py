"""Fixtures for the cluster-mode tests: real etcd processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.etcd_process import EtcdCluster, etcd_binary


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
