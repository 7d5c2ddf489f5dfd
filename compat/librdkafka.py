#!/usr/bin/env python3
"""Run librdkafka's own test suite against strom (or Apache Kafka) and report
pass/fail/skip per test. See docs/compat.md "librdkafka's test suite".

librdkafka's sources with their tests come from npm (Confluent's
@confluentinc/kafka-javascript bundles the library it binds, tests included:
GitHub is not reachable here). The library and `tests/test-runner` are built
once into .cache/librdkafka; each test then runs in its own test-runner
process with a deadline, against a broker this script starts:

  compat/librdkafka.py                       a fresh single strom broker
  compat/librdkafka.py --cluster             etcd + three strom brokers (scripts/local-cluster.sh):
                                             the tests that create topics at replication factor 3
  compat/librdkafka.py --broker kafka        Apache Kafka 4.4 (compat/kafka.sh), the baseline
  compat/librdkafka.py --bootstrap H:P       a broker already running
  compat/librdkafka.py --tests 0001,0012     only these (default: every test needing a broker,
                                             without the sockem and mock-cluster ones)

The brokers are configured as librdkafka's own test clusters are (trivup's
defaults: num.partitions=4, no rebalance delay). Exit status: 0 whatever the
tests did (it is a report); 2 bad usage, 3 the broker did not start, 4 the
sources could not be fetched or built.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "librdkafka"
NPM_PACKAGE = "@confluentinc/kafka-javascript@1.10.1"  # bundles librdkafka 2.15.1
KAFKA_VERSION = "4.4.0"
CONFIGURE_STAMP = "zstd\n"  # bump when the configure options change
ANSI = re.compile(r"\x1b\[[0-9;]*m|\x1b\(B")
BROKER_PROPS = {
    "num.partitions": "4", "group.initial.rebalance.delay.ms": "0",
    # 0081_admin creates and deletes ACLs: an authorizer that lets everything
    # through while no ACL names a resource, as librdkafka's clusters run.
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "allow.everyone.if.no.acl.found": "true",
    # local-cluster.sh's min.insync.replicas=2 would refuse acks=all on the
    # replication factor 1 topics most tests create.
    "min.insync.replicas": "1",
    # As librdkafka's clusters for Kafka 4.2+ (tests/cluster_testing.py): the
    # share consumer tests set share.record.lock.duration.ms to 3 s, below
    # Kafka's default minimum of 15 s.
    "group.share.min.record.lock.duration.ms": "1000",
}


def log(msg: str) -> None:
    print(f"librdkafka-suite: {msg}", file=sys.stderr, flush=True)


def sources() -> Path:
    """librdkafka's source tree with tests/test-runner built."""
    src = CACHE / "package" / "deps" / "librdkafka"
    runner = src / "tests" / "test-runner"
    stamp = src / ".strom-configure"  # the configure line this build was made with
    if runner.exists() and stamp.exists() and stamp.read_text() == CONFIGURE_STAMP:
        return src
    CACHE.mkdir(parents=True, exist_ok=True)
    missing = [tool for tool in ("npm", "cc", "c++", "make") if shutil.which(tool) is None]
    if not Path("/usr/include/zstd.h").exists():
        missing.append("libzstd-dev")
    if missing:
        log(f"installing npm and a C/C++ tool chain (missing: {', '.join(missing)})")
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "npm",
                        "build-essential", "libssl-dev", "zlib1g-dev", "libzstd-dev"], check=False,
                       stdin=subprocess.DEVNULL, timeout=1800)
    if not src.exists():
        log(f"fetching {NPM_PACKAGE} from npm (librdkafka's sources and tests)")
        out = subprocess.run(["npm", "pack", NPM_PACKAGE], cwd=CACHE, capture_output=True,
                             text=True, timeout=600)
        tgz = next(iter(sorted(CACHE.glob("*.tgz"))), None)
        if out.returncode != 0 or tgz is None:
            log(f"npm pack failed: {out.stderr.strip()[-500:]}")
            sys.exit(4)
        with tarfile.open(tgz) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("package/deps/librdkafka/")]
            tar.extractall(CACHE, members=members, filter="data")
    log("building librdkafka and its test-runner (a few minutes)")
    steps = [
        # What the suite needs against a plaintext broker (zstd: the share
        # consumer tests produce with every codec); SASL/GSSAPI and curl
        # would need more system packages.
        ["./configure", "--disable-gssapi", "--disable-sasl", "--disable-curl",
         "--disable-lz4-ext"],
        ["make", f"-j{os.cpu_count() or 2}", "libs"],
        ["make", "-C", "tests", f"-j{os.cpu_count() or 2}", "test-runner"],
    ]
    if runner.exists():  # built with other options: start over
        subprocess.run(["make", "clean"], cwd=src, capture_output=True, timeout=600)
        subprocess.run(["make", "-C", "tests", "clean"], cwd=src, capture_output=True, timeout=600)
    for step in steps:
        done = subprocess.run(step, cwd=src, capture_output=True, text=True, timeout=3600)
        if done.returncode != 0:
            log(f"{' '.join(step)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
            sys.exit(4)
    stamp.write_text(CONFIGURE_STAMP)
    return src


def broker_tests(src: Path, wanted: list[str] | None) -> list[str]:
    """The suite's tests that need a broker, as four-digit numbers."""
    names = sorted({p.name[:4] for p in (src / "tests").glob("0[0-9][0-9][0-9]-*.c*")})
    if wanted:
        return [n for n in names if n in wanted]
    return names


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, proc: subprocess.Popen[bytes] | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.25)
    return False


class Broker:
    def __init__(self, kind: str, work: Path) -> None:
        self.kind, self.work = kind, work
        self.proc: subprocess.Popen[bytes] | None = None
        self.bootstrap = ""
        self.env = dict(os.environ)

    def start(self) -> None:
        logf = open(self.work / "broker.log", "ab")  # noqa: SIM115 - the broker keeps it
        if self.kind == "cluster":
            ports = [free_port() for _ in range(3)]
            self.env.update({
                "CLUSTER_DIR": str(self.work / "cluster"),
                "CLUSTER_BROKER_PORTS": " ".join(map(str, ports)),
                "CLUSTER_ETCD_CLIENT_PORTS": str(free_port()),
                "CLUSTER_ETCD_PEER_PORTS": str(free_port()),
                "CLUSTER_LOG_LEVEL": os.environ.get("CLUSTER_LOG_LEVEL", "WARNING"),
                "CLUSTER_OVERRIDES": " ".join(f"{k}={v}" for k, v in BROKER_PROPS.items()),
            })
            done = subprocess.run([str(ROOT / "scripts" / "local-cluster.sh"), "start-all"],
                                  env=self.env, stdout=logf, stderr=logf, timeout=600)
            if done.returncode != 0:
                log("the cluster did not start (see its log)")
                sys.exit(3)
            self.bootstrap = ",".join(f"127.0.0.1:{p}" for p in ports)
            return
        port = free_port()
        if self.kind == "strom":
            cmd = [str(ROOT / ".venv" / "bin" / "strom"), "serve", "--log-level", "WARNING",
                   "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
                   "--override", f"log.dirs={self.work / 'data'}"]
            for k, v in BROKER_PROPS.items():
                cmd += ["--override", f"{k}={v}"]
        else:
            cmd = [str(ROOT / "compat" / "kafka.sh"), str(port), str(self.work / "kafka")]
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        if not wait_port("127.0.0.1", port, self.proc, 300):
            log(f"{self.kind} did not start listening (see {self.work / 'broker.log'})")
            sys.exit(3)
        self.bootstrap = f"127.0.0.1:{port}"

    def alive(self) -> bool:
        return self.proc is None or self.proc.poll() is None

    def stop(self) -> None:
        if self.kind == "cluster":
            subprocess.run([str(ROOT / "scripts" / "local-cluster.sh"), "stop-all"], env=self.env,
                           capture_output=True, timeout=300)
            return
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


# The Kafka scripts the tests shell out to, as the classes in Kafka 4.4's jars.
KAFKA_SCRIPTS = {
    "kafka-topics.sh": "org.apache.kafka.tools.TopicCommand",
    "kafka-acls.sh": "org.apache.kafka.tools.AclCommand",
    "kafka-configs.sh": "org.apache.kafka.tools.ConfigCommand",
}


def kafka_path(work: Path) -> Path:
    """A KAFKA_PATH for the tests that run bin/kafka-*.sh: Kafka's own tools
    from the jars in .cache/kafka (scripts/fetch-kafka.sh)."""
    shim = work / "kafka-path"
    (shim / "bin").mkdir(parents=True, exist_ok=True)
    libs = ROOT / ".cache" / "kafka" / "libs"
    for name, cls in KAFKA_SCRIPTS.items():
        script = shim / "bin" / name
        script.write_text(f"#!/bin/sh\nexec java -cp '{libs}/*' {cls} \"$@\"\n")
        script.chmod(0o755)
    return shim


def run_test(src: Path, test: str, bootstrap: str, timeout: float, kpath: Path,
             quick: bool) -> dict[str, object]:
    tests_dir = src / "tests"
    conf = tests_dir / f"test-{os.getpid()}.conf"
    conf.write_text(f"metadata.broker.list={bootstrap}\n")
    env = dict(os.environ, TESTS=test, RDKAFKA_TEST_CONF=str(conf),
               TEST_KAFKA_VERSION=KAFKA_VERSION, KAFKA_PATH=str(kpath), BROKERS=bootstrap,
               LD_LIBRARY_PATH=f"{src / 'src'}:{src / 'src-cpp'}")
    started = time.monotonic()
    try:
        # Quick mode (-Q) runs only the sub-tests marked SUB_TEST_QUICK: the
        # share consumer tests (0170-0185) then do nothing and pass.
        flags = ["-L", "-E", *(["-Q"] if quick else []), "-V", KAFKA_VERSION]
        done = subprocess.run(["./test-runner", *flags],
                              cwd=tests_dir, env=env, capture_output=True, timeout=timeout)
        out, code = ANSI.sub("", done.stdout.decode(errors="replace")
                             + done.stderr.decode(errors="replace")), done.returncode
    except subprocess.TimeoutExpired as exc:
        raw = (exc.stdout or b"") + (exc.stderr or b"")
        out, code = ANSI.sub("", raw.decode(errors="replace")), None
    seconds = round(time.monotonic() - started, 1)
    failures = re.findall(r'### Test "([^"]*)" failed at [^\n]*###\n([^\n]*)', out)
    # The runner has been seen to crash (SIGSEGV) in its own teardown after
    # "ALL TESTS PASSED"; the verdict is what it printed, the crash a note.
    passed = re.search(r"Test \S+ PASSED", out) is not None
    if code is None:
        result = "timeout"
    elif "Running test" not in out:
        result = "not run"  # filtered out by the runner (a local-only or mock test)
    elif failures:
        result = "fail"
    elif re.search(r"Test \S+ SKIPPED|SKIPPING", out) and not passed:
        result = "skip"
    elif passed and "ALL TESTS PASSED" in out:
        result = "pass"
    elif code == 0:
        result = "not run"  # nothing matched the filter (a local-only or mock test)
    else:
        result = "fail"
    note = "; ".join(f"{name}: {why.strip()}" for name, why in failures)[:600] or None
    if result == "skip":
        skips = re.findall(r"SKIPP\w*[^\n]*", out)
        note = skips[0] if skips else None
    elif result == "pass" and code not in (0, None):
        note = f"test-runner exited with {code} after ALL TESTS PASSED"
    elif result == "fail" and not failures:
        note = f"test-runner exited with {code}: {out.strip()[-300:]}"
    return {"test": test, "result": result, "seconds": seconds, "note": note}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=("strom", "kafka"), default="strom")
    parser.add_argument("--cluster", action="store_true")
    parser.add_argument("--bootstrap")
    parser.add_argument("--tests", help="comma-separated test numbers (0001,0012,...)")
    parser.add_argument("--test-timeout", type=float, default=300.0)
    parser.add_argument("--full", action="store_true",
                        help="every sub-test, not only the quick ones (-Q, the default)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    src = sources()
    wanted = [t.strip().zfill(4) for t in args.tests.split(",")] if args.tests else None
    tests = broker_tests(src, wanted)
    if not tests:
        log("no test to run")
        return 2
    kind = "cluster" if args.cluster else args.broker
    # A SIGTERM'd run still stops the brokers it started (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="strom-rdk."))
    broker = None
    results: list[dict[str, object]] = []
    try:
        if args.bootstrap:
            bootstrap = args.bootstrap
        else:
            broker = Broker(kind, work)
            broker.start()
            bootstrap = broker.bootstrap
        log(f"{len(tests)} tests against {kind} at {bootstrap}")
        for test in tests:
            if broker is not None and not broker.alive():
                log(f"the broker died before {test}; restarting it")
                broker.start()
                bootstrap = broker.bootstrap
            row = run_test(src, test, bootstrap, args.test_timeout, kafka_path(work),
                           not args.full)
            results.append(row)
            note = f" {str(row['note'])[:200]}" if row["note"] else ""
            log(f"{test} {row['result']} ({row['seconds']} s){note}")
    finally:
        if broker is not None:
            broker.stop()
            if (work / "broker.log").exists():
                CACHE.mkdir(parents=True, exist_ok=True)
                shutil.copy(work / "broker.log", CACHE / f"last-broker-{kind}.log")
        if os.environ.get("LIBRDKAFKA_KEEP_WORK"):
            log(f"kept the broker's files in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    summary: dict[str, int] = {}
    for row in results:
        summary[str(row["result"])] = summary.get(str(row["result"]), 0) + 1
    suffix = {"strom": "", "kafka": "-kafka", "cluster": "-cluster"}[kind]
    out = args.out or ROOT / "compat" / f"results-librdkafka{suffix}.json"
    out.write_text(json.dumps({"meta": {"broker": kind, "librdkafka": "2.15.1",
                                        "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())},
                               "summary": summary, "tests": results}, indent=1) + "\n")
    log(f"summary {summary}; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
