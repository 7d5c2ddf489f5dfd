"""kcat (librdkafka's CLI; Debian 12 ships it linked against librdkafka 2.0.2, which
mis-parses tagged fields a broker writes at their defaults). Producing and
consuming with kcat is in the cross-client matrix; here: metadata and a keyed
round trip with headers in one kcat pipeline."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

pytestmark = pytest.mark.interop


def run(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(list(args), input=input, capture_output=True, timeout=60,
                          stdin=None if input is not None else subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc


def test_kcat_metadata(bootstrap: str, topic: str, create_topic: Any, kcat: str) -> None:
    create_topic(topic, partitions=4)
    md = json.loads(run(kcat, "-L", "-b", bootstrap, "-t", topic, "-J").stdout)
    # every broker of the cluster is a bootstrap server here (one on a single node)
    assert sorted(b["name"] for b in md["brokers"]) == sorted(bootstrap.split(","))
    broker_ids = {b["id"] for b in md["brokers"]}
    assert len(broker_ids) == len(md["brokers"])
    [t] = md["topics"]
    assert t["topic"] == topic
    assert "error" not in t
    assert [p["partition"] for p in t["partitions"]] == [0, 1, 2, 3]
    for p in t["partitions"]:
        replicas = [r["id"] for r in p["replicas"]]
        assert replicas and len(set(replicas)) == len(replicas) <= len(broker_ids)
        assert set(replicas) <= broker_ids
        # a new topic: its preferred (first) replica leads, every replica in sync
        assert p["leader"] == replicas[0]
        assert sorted(r["id"] for r in p["isrs"]) == sorted(replicas)
    assert md["controllerid"] in broker_ids


def test_kcat_keyed_lines_with_headers(bootstrap: str, topic: str, create_topic: Any,
                                       kcat: str) -> None:
    """kcat -K splits key and value on a delimiter; -H adds headers to every message."""
    create_topic(topic, partitions=1)
    lines = [f"k{i}:value {i}" for i in range(50)]
    run(kcat, "-P", "-b", bootstrap, "-t", topic, "-p", "0", "-K", ":", "-H", "app=kcat",
        "-H", "empty=", "-z", "lz4", input=("\n".join(lines) + "\n").encode())
    out = run(kcat, "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-J", "-q")
    msgs = [json.loads(line) for line in out.stdout.decode().splitlines() if line.strip()]
    assert [(m["offset"], m["key"], m["payload"]) for m in msgs] == [
        (i, f"k{i}", f"value {i}") for i in range(50)]
    assert all(m["headers"] == ["app", "kcat", "empty", ""] for m in msgs)
    # -o -10: the last ten, relative to the end
    out = run(kcat, "-C", "-b", bootstrap, "-t", topic, "-p", "0", "-o", "-10", "-e", "-q",
              "-f", "%o %k\n")
    assert out.stdout.decode().split("\n")[:10] == [f"{i} k{i}" for i in range(40, 50)]
