"""`strom console` (the command, as a subprocess) against Apache Kafka 4.x itself:
the console uses only standard clients, so every page works on Kafka too."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from tests.interop import _kafka_reference
from tests.interop.clients import KAFKA_LIBS

STROM = Path(sys.executable).parent / "strom"

pytestmark = pytest.mark.java


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not KAFKA_LIBS.is_dir() or shutil.which("java") is None:
        pytest.skip("Apache Kafka's jars or java missing: make kafka-jars")
    ref = _kafka_reference.start(tmp_path_factory.mktemp("kafka"))
    try:
        yield ref.bootstrap
    finally:
        ref.stop()


@pytest.fixture(scope="module")
def console_url(kafka: str) -> Iterator[str]:
    port = _kafka_reference.free_port()
    process = subprocess.Popen([str(STROM), "console", "-b", kafka, "--listen",
                                f"127.0.0.1:{port}"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not _kafka_reference._can_connect(port):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                _, err = process.communicate(timeout=10)
                pytest.fail(f"strom console did not start: {err.decode()[-2000:]}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.terminate()
            assert process.wait(timeout=30) == 0


def get(url: str, form: dict[str, str] | None = None) -> str:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    with urllib.request.urlopen(url, data=data, timeout=60) as response:
        assert response.status == 200
        return str(response.read().decode())


def test_every_page_against_apache_kafka(kafka: str, console_url: str) -> None:
    assert "controller" in get(console_url + "/")
    page = get(console_url + "/topics", {"name": "on-kafka", "partitions": "2",
                                         "replication_factor": "1"})
    assert page.count("<tr") >= 3  # the new topic's partitions
    page = get(console_url + "/topics/on-kafka/produce",
               {"key": "k1", "value": json.dumps({"x": {"y": 1}}), "headers": "h: one",
                "partition": "any"})
    assert "Produced at partition:offset" in page
    page = get(console_url + "/topics/on-kafka/messages?start=beginning&path=x.y&equals=1")
    assert "1 message(s) shown" in page and "h: one" in page and "&#34;y&#34;: 1" in page
    assert "KiB" in get(console_url + "/topics") or " B<" in get(console_url + "/topics")

    page = get(console_url + "/topics/on-kafka/configs",
               {"name": "retention.ms", "value": "3600000", "action": "set"})
    assert "retention.ms changed" in page
    assert "3600000</code></td><td>topic override" in page

    producer = Producer({"bootstrap.servers": kafka})
    for i in range(9):
        producer.produce("on-kafka", value=b"%d" % i, partition=0)
    assert producer.flush(10) == 0
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": "kg",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe(["on-kafka"])
    got, deadline = 0, time.monotonic() + 30
    while got < 3 and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        got += msg is not None and msg.error() is None
    consumer.commit(asynchronous=False)
    consumer.close()
    page = get(console_url + "/groups/kg")
    assert "EMPTY" in page
    page = get(console_url + "/groups/kg/reset", {"topic": "*", "to": "earliest", "value": ""})
    assert 'id="plan"' in page
    page = get(console_url + "/groups/kg/reset",
               {"topic": "*", "to": "earliest", "value": "", "apply": "1"})
    assert 'id="reset-done"' in page
    page = get(console_url + "/topics/on-kafka/delete", {"confirm": "on-kafka"})
    assert "Topic on-kafka deleted" in page


def test_bad_listen_address_is_a_usage_error() -> None:
    result = subprocess.run([str(STROM), "console", "--listen", "nowhere"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--listen 'nowhere': expected HOST:PORT" in result.stderr
