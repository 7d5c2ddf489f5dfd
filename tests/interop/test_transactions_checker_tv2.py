"""The transaction checker with transaction version 2 (KIP-890 part 2).

test_transactions_checker.py drives librdkafka, which speaks transaction
version 1. Here the writers are Kafka 4.4's Java producer
(java/TxnCheckerProducer.java, one process per producer incarnation, driven
line by line over stdin), which uses version 2 against a broker that
finalizes ``transaction.version`` at 2: the epoch is bumped at every
transaction end (EndTxn v5+), Produce v12+ adds its partition to the
transaction itself, there is no AddPartitionsToTxn. The test proves that it
did by counting the requests the producers sent through a tap in front of
the broker (request_tap.py), so it cannot silently fall back to version 1.

Each writer runs transactions over every partition of a topic, committing
or aborting at random, while:
  - the broker (a separate process) is killed with SIGKILL and restarted,
    each time while a writer's commit is in flight;
  - a writer's process is killed with an open transaction, and a new one
    with the same transactional.id takes over (its InitProducerId aborts
    the leftover);
  - once per writer, a new process takes over while the old one is still
    alive with an open transaction; the old one (a zombie) then tries to
    commit it, after writing more records to it for even writers: every
    write and commit of the zombie must fail.

A transaction whose commit was never asked for is aborted; one whose commit
returned is committed; one whose commit failed is unknown. A read_committed
consumer then checks the history (txn_checker.py).
"""

from __future__ import annotations

import queue
import random
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strom.protocol.api import ApiKey
from tests.process import StromProcess, free_port

from .clients import KAFKA_LIBS, compile_java
from .request_tap import RequestTap
from .txn_checker import ABORTED, COMMITTED, UNKNOWN, check_history, read_committed

pytestmark = [pytest.mark.interop, pytest.mark.java]

WRITERS = 3
TRANSACTIONS = 15
PARTITIONS = 3
RECORDS_PER_PARTITION = 2
KILLS = 3
ABORT_RATE = 0.35
PROCESS_KILL_RATE = 0.08
COMMAND_TIMEOUT = 40.0  # beyond the producer's max.block.ms and delivery.timeout.ms
OVERRIDES = {
    "offsets.topic.num.partitions": "2",
    "transaction.state.log.num.partitions": "2",
    "num.partitions": "1",
}


@pytest.fixture(scope="module")
def producer_classes(tmp_path_factory: pytest.TempPathFactory, java_tools: Any) -> Path:
    return compile_java("TxnCheckerProducer", tmp_path_factory.mktemp("txn-checker-producer"))


class JavaProducer:
    """One TxnCheckerProducer process; its stdout lines are queued by a thread."""

    def __init__(self, classes: Path, bootstrap: str, topic: str, writer: int,
                 client_id: str, stderr_path: Path) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        with open(stderr_path, "ab") as stderr:
            self.proc = subprocess.Popen(
                # C1 only and the serial collector: a faster start, which dominates here
                ["java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
                 "-cp", f"{classes}:{KAFKA_LIBS}/*", "TxnCheckerProducer", bootstrap, topic,
                 f"tv2-checker-{writer}", client_id, str(writer), str(PARTITIONS),
                 str(RECORDS_PER_PARTITION)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)  # exited

    def next_line(self, timeout: float = COMMAND_TIMEOUT) -> str | None:
        """The next line printed, or None if the process exited or stayed silent."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def ask(self, command: str) -> str | None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except OSError:
            return None
        return self.next_line()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)


class Writer(threading.Thread):
    """Runs TRANSACTIONS transactions under one transactional.id, through as
    many producer processes as it takes."""

    def __init__(self, index: int, classes: Path, bootstrap: str, topic: str, seed: int,
                 logs: Path, progress: threading.Condition) -> None:
        super().__init__(daemon=True, name=f"tv2-writer-{index}")
        self.index = index
        self.classes = classes
        self.bootstrap = bootstrap
        self.topic = topic
        self.logs = logs
        self.random = random.Random(seed)
        self.zombie_at = self.random.randrange(1, TRANSACTIONS - 1)
        self.outcomes: dict[int, str] = {}
        self.committing = False  # a commit was asked for and has not answered yet
        self.processes: list[JavaProducer] = []
        self.events: list[str] = []  # what went wrong along the way, for the report
        self.zombie_replies: list[str | None] = []
        self.progress = progress  # shared by the writers, notified at every change
        self.error: BaseException | None = None

    def _start_producer(self) -> JavaProducer:
        """A new producer process with this writer's transactional.id; its
        initTransactions fences the previous one."""
        for _ in range(3):
            producer = JavaProducer(self.classes, self.bootstrap, self.topic, self.index,
                                    f"tv2-writer-{self.index}-{len(self.processes) + 1}",
                                    self.logs / f"writer-{self.index}.stderr")
            self.processes.append(producer)
            line = producer.next_line(60)
            if line == "ready":
                return producer
            self.events.append(f"start {len(self.processes)}: {line}")
            producer.kill()
        raise AssertionError(f"writer {self.index}: no producer ready: {self.events}")

    def _finish(self, n: int, outcome: str) -> None:
        with self.progress:
            self.outcomes[n] = outcome
            self.progress.notify_all()

    def run(self) -> None:
        try:
            producer = self._start_producer()
            for n in range(TRANSACTIONS):
                reply = producer.ask(f"send {n}")
                if reply != f"sent {n}":
                    # Commit was never asked for: the next producer's
                    # InitProducerId must abort whatever was written.
                    self.events.append(f"send {n}: {reply}")
                    producer.kill()
                    producer = self._start_producer()
                    self._finish(n, ABORTED)
                elif n == self.zombie_at:
                    zombie, producer = producer, self._start_producer()
                    if self.index % 2 == 0:
                        # A late produce of the fenced epoch (which then fails
                        # the commit in the client) ...
                        self.zombie_replies.append(zombie.ask(f"more {n}"))
                    # ... or an EndTxn of the fenced epoch.
                    reply = zombie.ask(f"commit {n}")
                    self.zombie_replies.append(reply)
                    zombie.kill()
                    self._finish(n, COMMITTED if reply == f"committed {n}" else ABORTED)
                elif self.random.random() < PROCESS_KILL_RATE:
                    producer.kill()
                    producer = self._start_producer()
                    self._finish(n, ABORTED)
                elif self.random.random() < ABORT_RATE:
                    reply = producer.ask(f"abort {n}")
                    if reply != f"aborted {n}":
                        self.events.append(f"abort {n}: {reply}")
                        producer.kill()
                        producer = self._start_producer()
                    self._finish(n, ABORTED)
                else:
                    with self.progress:
                        self.committing = True
                        self.progress.notify_all()
                    reply = producer.ask(f"commit {n}")
                    with self.progress:
                        self.committing = False
                    if reply == f"committed {n}":
                        self._finish(n, COMMITTED)
                    else:
                        self.events.append(f"commit {n}: {reply}")
                        producer.kill()
                        producer = self._start_producer()
                        self._finish(n, UNKNOWN)
            assert producer.proc.stdin is not None
            producer.proc.stdin.close()
            closed = producer.next_line()
            producer.kill()
            assert closed == "closed", closed
        except BaseException as exc:  # reported by the test
            self.error = exc
            with self.progress:
                self.progress.notify_all()


@pytest.fixture
def tapped_broker(tmp_path: Path) -> Iterator[tuple[StromProcess, RequestTap]]:
    """A strom process whose clients all go through a RequestTap."""
    port = free_port()
    tap = RequestTap(port)
    broker = StromProcess(tmp_path / "data", port=port, overrides={
        **OVERRIDES, "advertised.listeners": f"PLAINTEXT://{tap.address}"})
    broker.start()
    try:
        yield broker, tap
    finally:
        broker.stop()
        tap.close()


def test_tv2_no_aborted_read_no_lost_write_no_torn_transaction(
        tapped_broker: tuple[StromProcess, RequestTap], producer_classes: Path,
        tmp_path: Path) -> None:
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    broker, tap = tapped_broker
    topic = f"checked-tv2-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": tap.address})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(30)
    progress = threading.Condition()
    writers = [Writer(i, producer_classes, tap.address, topic, seed=i, logs=tmp_path,
                      progress=progress) for i in range(WRITERS)]

    def done() -> int:
        return sum(len(w.outcomes) for w in writers)

    def failed() -> bool:
        return any(w.error is not None for w in writers)

    for w in writers:
        w.start()
    aimed = 0
    try:
        for kill in range(1, KILLS + 1):
            target = kill * WRITERS * TRANSACTIONS // (KILLS + 1)
            with progress:
                assert progress.wait_for(lambda: done() >= target or failed(), 120)  # noqa: B023
                # Aim at a commit: the kill lands just before, while or just after the
                # coordinator writes PrepareCommit, the markers and CompleteCommit.
                progress.wait_for(lambda: any(w.committing for w in writers) or failed()
                                  or done() == WRITERS * TRANSACTIONS, 10)
                aimed += any(w.committing for w in writers)
            broker.kill()
            broker.start()
        for w in writers:
            w.join(300)
            assert not w.is_alive()
    finally:
        for w in writers:
            for process in w.processes:
                process.kill()
    for w in writers:
        print(f"writer {w.index}: {len(w.processes)} processes, zombie at {w.zombie_at}: "
              f"{w.zombie_replies}, outcomes {sorted(w.outcomes.items())}, "
              f"events {w.events}")  # shown with -s or on failure
    for w in writers:
        assert w.error is None, f"writer {w.index}: {w.error!r}; {w.events}"
    assert aimed, "no kill landed on a commit in flight"
    seen = read_committed(tap.address, topic, PARTITIONS)

    # Transaction version 2, seen on the wire: no producer incarnation fell back to 1.
    sent: dict[str, dict[int, set[int]]] = {}
    for (client_id, api_key, api_version), _ in tap.requests().items():
        if client_id is not None and client_id.startswith("tv2-writer-"):
            sent.setdefault(client_id, {}).setdefault(api_key, set()).add(api_version)
    print(f"API versions sent: {sent}")
    assert len(sent) >= WRITERS, sent
    for client_id, apis in sent.items():
        assert ApiKey.ADD_PARTITIONS_TO_TXN not in apis, (client_id, apis)
        assert min(apis.get(ApiKey.PRODUCE, {12})) >= 12, (client_id, apis)
        assert min(apis.get(ApiKey.END_TXN, {5})) >= 5, (client_id, apis)
    assert any(ApiKey.PRODUCE in apis for apis in sent.values())
    assert any(ApiKey.END_TXN in apis for apis in sent.values())

    for w in writers:
        assert w.zombie_replies, f"writer {w.index} had no zombie"
        for reply in w.zombie_replies:
            assert reply is not None and reply.startswith("error "), (
                f"writer {w.index}: a fenced producer's write or commit answered {reply!r}")
    outcomes = {(w.index, n): o for w in writers for n, o in w.outcomes.items()}
    check_history(seen, outcomes, PARTITIONS * RECORDS_PER_PARTITION)
