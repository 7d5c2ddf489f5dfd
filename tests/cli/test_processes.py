"""`strom.processes`: what each broker process of `strom serve` is given
(sans-I/O: the overrides computed from a configuration), and the refusals
that happen before any process starts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from strom.cli.processes import process_count, shard_overrides
from strom.config import BrokerConfig
from strom.errors import InvalidConfigError

ETCD = {"strom.metadata.etcd.endpoints": "http://127.0.0.1:2379"}



def test_each_process_is_its_own_broker() -> None:
    cfg = BrokerConfig.from_properties({
        **ETCD, "node.id": "4", "strom.processes": "3",
        "listeners": "PLAINTEXT://127.0.0.1:9092,INTERNAL://10.0.0.1:19092",
        "advertised.listeners": "PLAINTEXT://broker.example:9092,INTERNAL://10.0.0.1:19092",
        "strom.http.listener": "http://127.0.0.1:8080",
        "log.dirs": "/data/a,/data/b/"})
    assert process_count(cfg) == 3
    assert shard_overrides(cfg, 0) == ["strom.processes=1"]  # keeps id, ports, dirs
    assert shard_overrides(cfg, 2) == [
        "strom.processes=1", "node.id=6",
        "listeners=PLAINTEXT://127.0.0.1:9094,INTERNAL://10.0.0.1:19094",
        "advertised.listeners=PLAINTEXT://broker.example:9094,INTERNAL://10.0.0.1:19094",
        "strom.http.listener=http://127.0.0.1:8082",
        "log.dirs=/data/a-shard2,/data/b-shard2"]
    # The overrides parse back into a valid configuration of that broker.
    shard = BrokerConfig.load(None, [f"{k}={v}" for k, v in {
        **ETCD, "node.id": "4", "listeners": "PLAINTEXT://127.0.0.1:9092"}.items()]
        + shard_overrides(BrokerConfig.from_properties({
            **ETCD, "node.id": "4", "listeners": "PLAINTEXT://127.0.0.1:9092"}), 1))
    assert shard.node_id == 5 and shard.listeners == [("PLAINTEXT", "127.0.0.1", 9093)]
    assert process_count(shard) == 1


def test_default_is_one_process() -> None:
    assert process_count(BrokerConfig.from_properties({})) == 1
    assert process_count(BrokerConfig.from_properties(ETCD)) == 1


def test_one_per_core_on_a_single_node_is_one() -> None:
    # 0 asks for one per core; a single node cannot share its metadata.
    assert process_count(BrokerConfig.from_properties({"strom.processes": "0"})) == 1


def test_more_than_one_needs_cluster_mode() -> None:
    with pytest.raises(InvalidConfigError, match="strom.metadata.etcd.endpoints"):
        process_count(BrokerConfig.from_properties({"strom.processes": "2"}))


def test_port_zero_cannot_be_shifted() -> None:
    cfg = BrokerConfig.from_properties({**ETCD, "listeners": "PLAINTEXT://127.0.0.1:0"})
    with pytest.raises(InvalidConfigError, match="port 0"):
        shard_overrides(cfg, 1)


def test_serve_refuses_before_starting(tmp_path: object) -> None:
    res = subprocess.run([sys.executable, "-m", "strom", "serve", "--override",
                          "strom.processes=2", "--override", f"log.dirs={tmp_path}"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip().startswith("strom serve: error: strom.processes=2 needs cluster")
