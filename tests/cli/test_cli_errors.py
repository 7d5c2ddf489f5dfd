"""The CLI, run as a subprocess, passes the broker's reason for a rejected
record through, and gives up at once when nothing listens at the bootstrap
address. At 0098471 it printed only "INVALID_RECORD", and waited out the
whole --timeout (here 600 s) before exiting 3."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from strom.testing import EmbeddedBroker


def strom(*args: str, stdin: bytes = b"", bootstrap: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "strom", *args, "--bootstrap-server", bootstrap],
                          input=stdin.decode(), capture_output=True, text=True, env=env,
                          timeout=60)


def test_produce_shows_the_brokers_reason(broker: EmbeddedBroker, topic_name: str) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic_name, 1, config={"cleanup.policy": "compact"})]
                        )[topic_name].result(15)
    result = strom("produce", topic_name, stdin=b"no key\n", bootstrap=broker.bootstrap)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == (
        "strom produce: error: 1 of 1 records failed: Broker failed to validate record "
        "(INVALID_RECORD): compacted topic cannot accept a record without a key")
    # Records with a key still go in; nothing was written by asking why.
    ok = strom("produce", topic_name, "-K", ":", stdin=b"k:v\n", bootstrap=broker.bootstrap)
    assert ok.returncode == 0, ok.stderr
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "probe"})
    try:
        assert consumer.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=15) == (0, 1)
    finally:
        consumer.close()


@pytest.mark.parametrize("command", [["topics", "list"], ["consume", "t"]], ids=" ".join)
def test_refused_connection_fails_fast(command: list[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    try:
        result = strom(*command, "--timeout", "600", bootstrap=f"127.0.0.1:{port}")
    except subprocess.TimeoutExpired:
        pytest.fail("waited for --timeout instead of failing fast")
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip().endswith(
        f"error: cannot connect to 127.0.0.1:{port}: Connection refused"), result.stderr
