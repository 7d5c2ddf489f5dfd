"""`strom serve --log-format json`: every line on stderr is one JSON object."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka import Producer

from strom.log_format import JsonFormatter
from tests.process import free_port

KEYS = {"time", "level", "logger", "message"}


def parse_lines(text: str) -> list[dict[str, object]]:
    entries = []
    for line in text.splitlines():
        entry = json.loads(line)  # fails the test on any line that is not JSON
        assert isinstance(entry, dict) and entry.keys() >= KEYS, line
        entries.append(entry)
    return entries


def test_serve_logs_one_json_object_per_line(tmp_path: Path) -> None:
    port = free_port()
    args = [sys.executable, "-m", "strom", "serve", "--log-format", "json",
            "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
            "--override", f"log.dirs={tmp_path / 'data'}",
            "--override", "offsets.topic.num.partitions=1"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        assert "serving on" in proc.stdout.readline()  # printed once the broker is up
        producer = Producer({"bootstrap.servers": f"127.0.0.1:{port}"})
        producer.produce("json-logs", b"x")  # auto-created: the creation is logged
        assert producer.flush(30) == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    entries = parse_lines(stderr)
    messages = [str(e["message"]) for e in entries]
    assert any("serving on" in m for m in messages), messages
    assert any("broker stopped" in m for m in messages), messages
    assert all(str(e["time"]).endswith("Z") and e["level"] in
               ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") for e in entries)


def test_startup_error_is_a_json_line_too(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "strom", "serve", "--log-format", "json",
            "--override", f"log.dirs={tmp_path}", "--override", "listeners=garbage"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    (entry,) = parse_lines(result.stderr)
    assert entry["level"] == "ERROR" and "cannot parse 'garbage'" in str(entry["message"])


def test_extra_fields_and_exceptions_are_fields() -> None:
    formatter = JsonFormatter()
    logger = logging.getLogger("strom.test")
    try:
        raise ValueError("bad batch")
    except ValueError:
        record = logger.makeRecord(
            "strom.test", logging.ERROR, __file__, 1, "produce to %s-%d failed",
            ("orders", 3), sys.exc_info(),
            extra={"topic": "orders", "partition": 3, "client_id": "svc-a"})
    record.created = time.time()
    entry = json.loads(formatter.format(record))
    assert entry["message"] == "produce to orders-3 failed"
    assert (entry["topic"], entry["partition"], entry["client_id"]) == ("orders", 3, "svc-a")
    assert "ValueError: bad batch" in entry["exception"]
    assert "\n" not in formatter.format(record)


def test_unknown_log_format_in_the_environment_is_refused(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "strom", "serve", "--override", f"log.dirs={tmp_path}"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL,
                            env={**os.environ, "STROM_LOG_FORMAT": "yaml"})
    assert result.returncode == 2
    assert result.stderr.strip() == \
        "strom serve: error: STROM_LOG_FORMAT: 'yaml' is neither text nor json"
