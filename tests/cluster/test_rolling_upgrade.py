"""A rolling upgrade (issue 15): three brokers of the previous strom (PREVIOUS,
the commit before metadata.version, whose brokers cannot read the security
records) are replaced one at a time by this tree's strom (SIGTERM,
controlled shutdown, start the new version, wait for full ISRs) while
idempotent acks=all producers and a consumer group run. Then the reverse: one
broker goes back to the previous version, and the mixed cluster still serves
while the new controller refuses to raise metadata.version (and to write
records the old broker could not read); once it runs the new version again,
the upgrade is finalized.

Required: no acknowledged record lost or duplicated, no send failed (only
retriable errors, which librdkafka retries), leaderships moved before each
exit, metadata.version stays 7 until it is raised, and no broker (old or new)
ever logs a metadata batch it could not read (`ignoring etcd key`)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from tests.broker.raw_client import RawClient
from tests.cluster.fault_injector import FaultInjector, wait_for
from tests.cluster.local_cluster import ROOT, LocalCluster, process_exists
from tests.cluster.rolling import RollingLoad, leads, moved_before_exit, watch_shutdown

#: The strom before metadata.version (and before the security records).
PREVIOUS = "c59c16c"
TOPIC = "upgrading"
PARTITIONS = 6
ALTER_USER_SCRAM_CREDENTIALS, ALTER_CLIENT_QUOTAS = 51, 49


@pytest.fixture(scope="module")
def previous_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A command that runs Python with PREVIOUS's strom package (its source
    from git, this tree's compiled record walker, which git does not hold)."""
    if shutil.which("git") is None or subprocess.run(
            ["git", "-C", str(ROOT), "cat-file", "-e", f"{PREVIOUS}^{{commit}}"],
            capture_output=True, check=False).returncode != 0:
        pytest.skip(f"commit {PREVIOUS} (the previous strom) is not in this checkout")
    tree = tmp_path_factory.mktemp("strom-previous")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", PREVIOUS, "strom"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    for built in (ROOT / "strom" / "protocol" / "records").glob("_walk*.so"):
        shutil.copy(built, tree / "strom" / "protocol" / "records" / built.name)
    wrapper = tree / "python"
    # `python -m` puts the working directory first on sys.path: there, the
    # previous package is found before this tree's editable install.
    wrapper.write_text(f'#!/bin/sh\ncd "{tree}" && PYTHONPATH="{tree}" exec '
                       f'"{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


@pytest.fixture
def cluster(etcd_bin: str, tmp_path: Path, previous_python: str) -> Iterator[LocalCluster]:
    local = LocalCluster(tmp_path / "cluster", etcd_bin, session_timeout_ms=3000,
                         replica_lag_ms=3000)
    local.env["STROM_PYTHON"] = previous_python
    try:
        local.run("start-all")
        yield local
    finally:
        local.stop_all()


def _leads(injector: FaultInjector, node_id: int, seen_by: int) -> set[int] | None:
    return leads(injector, node_id, seen_by, PARTITIONS)


def _api_versions(cluster: LocalCluster, node_id: int) -> Any:
    with RawClient(cluster.broker_address(node_id)) as client:
        return client.send(ApiKey.API_VERSIONS, 3, {"client_software_name": "upgrade-test",
                                                    "client_software_version": "1"})


def _metadata_version(cluster: LocalCluster, node_id: int) -> tuple[int, int] | None:
    """(max supported, finalized) metadata.version, None from the previous strom."""
    response = _api_versions(cluster, node_id)
    supported = {f.name: int(f.max_version) for f in response.supported_features}
    finalized = {f.name: int(f.max_version_level) for f in response.finalized_features}
    if "metadata.version" not in supported:
        return None
    return supported["metadata.version"], finalized["metadata.version"]


def _update_metadata_version(cluster: LocalCluster, node_id: int, level: int) -> Any:
    with RawClient(cluster.broker_address(node_id), timeout=40) as client:
        response = client.send(ApiKey.UPDATE_FEATURES, 1, {
            "timeout": 30_000,
            "feature_updates": [{"feature": "metadata.version", "max_version_level": level,
                                 "upgrade_type": 1}]})
    return response.results[0]


def _security_write(cluster: LocalCluster, node_id: int) -> tuple[str, int] | None:
    """Write a record of metadata.version 11 through a Kafka API (a client
    quota, else a SCRAM credential), if this strom serves one: (API, code)."""
    served = {int(k.api_key) for k in _api_versions(cluster, node_id).api_keys}
    with RawClient(cluster.broker_address(node_id), timeout=40) as client:
        if ALTER_CLIENT_QUOTAS in served:
            response = client.send(ALTER_CLIENT_QUOTAS, 1, {"validate_only": False, "entries": [{
                "entity": [{"entity_type": "user", "entity_name": "alice"}],
                "ops": [{"key": "producer_byte_rate", "value": 1024.0, "remove": False}]}]})
            return "AlterClientQuotas", int(response.entries[0].error_code)
        if ALTER_USER_SCRAM_CREDENTIALS in served:
            salt = os.urandom(16)
            response = client.send(ALTER_USER_SCRAM_CREDENTIALS, 0, {
                "deletions": [], "upsertions": [{
                    "name": "alice", "mechanism": 1, "iterations": 4096, "salt": salt,
                    "salted_password": hashlib.pbkdf2_hmac("sha256", b"secret", salt, 4096)}]})
            return "AlterUserScramCredentials", int(response.results[0].error_code)
    return None


def _replace(cluster: LocalCluster, injector: FaultInjector, victim: int, python: str,
             notes: list[str], *, running_previous: bool) -> None:
    """SIGTERM `victim`, require its leaderships moved while it still ran,
    start it with `python`, wait until the cluster is whole.

    A broker of this tree must exit. One of the previous strom that has not
    exited 60 s after SIGTERM is killed and noted: that version waits forever
    for a replica fetcher whose cancel Python 3.11's wait_for swallowed
    (fixed here in broker/cancel.py), 3 of 11 runs under a load average of 30-40."""
    other = next(n for n in cluster.node_ids if n != victim)
    led = _leads(injector, victim, other)
    pid = cluster.status()[f"broker-{victim}"][0]
    assert pid is not None and led is not None
    started = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    moved_at, exited_at = watch_shutdown(injector, victim, other, pid, PARTITIONS)
    if exited_at is None:
        state = _process_state(pid)
        assert running_previous, f"broker {victim} still running 60s after SIGTERM ({state})"
        notes.append(f"broker {victim} (previous strom) still running 60s after SIGTERM "
                     f"({state}): killed")
        os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: not process_exists(pid), 10)
    assert moved_before_exit(moved_at, exited_at), \
        (f"broker {victim}: leaderships of {sorted(led)} not moved before it exited "
         f"(moved {moved_at}s, exited {exited_at}s after SIGTERM)")
    cluster.run("stop", victim)  # forgets the pid file of the exited process
    cluster.env["STROM_PYTHON"] = python
    cluster.run("start", victim)
    assert injector.wait_whole(), injector.describe_state()
    version = "previous" if python != sys.executable else "new"
    notes.append(f"broker {victim} -> {version} strom: led {sorted(led)}, whole again "
                 f"{time.monotonic() - started:.2f}s after SIGTERM")


def _process_state(pid: int) -> str:
    """/proc's state letter (T: stopped) and the last thing the process waits in."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError as exc:
        return f"no /proc entry: {exc}"
    return f"state {state}, waiting in {wchan or '-'}"


def _unreadable_batches(cluster: LocalCluster) -> list[str]:
    """Lines where a broker (of either version) dropped metadata it could not read."""
    found = []
    for node_id in cluster.node_ids:
        log = cluster.directory / f"broker-{node_id}.log"
        for line in log.read_text(errors="replace").splitlines():
            if "ignoring etcd key" in line or "CodecError" in line:
                found.append(f"broker-{node_id}: {line}")
    return found


@pytest.mark.timeout(300)
def test_rolling_upgrade_loses_nothing_and_gates_new_records(
        cluster: LocalCluster, previous_python: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    new = sys.executable
    injector = FaultInjector(cluster, TOPIC, PARTITIONS, 3, 3.0, heal_timeout=60)
    bootstrap = cluster.bootstrap()
    assert wait_for(lambda: (s := injector.view.any_snapshot()) is not None
                    and s.brokers == set(cluster.node_ids), 60)
    assert all(_metadata_version(cluster, n) is None for n in cluster.node_ids)
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 2})
    admin.create_topics([NewTopic(
        TOPIC, PARTITIONS, 3, config={"min.insync.replicas": "2"})])[TOPIC].result(60)
    assert injector.wait_whole(), injector.describe_state()
    load = RollingLoad(bootstrap, TOPIC, PARTITIONS, "upgrading")
    notes: list[str] = []
    try:
        load.start()
        for victim in cluster.node_ids:
            _replace(cluster, injector, victim, new, notes, running_previous=True)
            # The metadata an older strom wrote has no level: the minimum.
            assert _metadata_version(cluster, victim) == (12, 7)
        # Every broker upgraded; the level is raised only when asked. The
        # reverse: one broker (not the controller) back to the previous strom.
        controller = injector.view.snapshot(1).controller  # type: ignore[union-attr]
        old = next(n for n in cluster.node_ids if n != controller)
        _replace(cluster, injector, old, previous_python, notes, running_previous=False)
        assert _metadata_version(cluster, old) is None
        refused = _update_metadata_version(cluster, controller, 11)
        assert refused.error_code == ErrorCode.invalid_update_version, refused
        assert f"Broker {old} only supports versions [7-7]" in refused.error_message
        gated = _security_write(cluster, controller)
        if gated is not None:
            assert gated[1] == ErrorCode.unsupported_version, gated
        assert all(_metadata_version(cluster, n) in (None, (12, 7)) for n in cluster.node_ids)
        _replace(cluster, injector, old, new, notes, running_previous=True)
        raised = _update_metadata_version(cluster, controller, 11)
        assert raised.error_code == ErrorCode.none, raised
        assert wait_for(lambda: all(_metadata_version(cluster, n) == (12, 11)
                                    for n in cluster.node_ids), 30)
        written = _security_write(cluster, controller)
        if written is not None:
            assert written[1] == ErrorCode.none, written
        notes.append(f"record of level 11 through {gated and gated[0]}: "
                     f"{gated and ErrorCode(gated[1]).name} while broker {old} ran the previous "
                     f"strom, then {written and ErrorCode(written[1]).name}")
        load.wait_for_new_acks()
    finally:
        load.stop_writers()
    load.judge("rolling upgrade", notes, capsys)
    assert _unreadable_batches(cluster) == []
