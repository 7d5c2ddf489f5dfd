"""`strom produce` and `strom consume` end to end against the session broker."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from strom.testing import EmbeddedBroker
from tests.cli.conftest import Cli, ok, run_cli


def test_key_separator_headers_and_json_roundtrip(cli: Cli, topic_name: str) -> None:
    produced = ok(cli("produce", topic_name, "-K", ":", "-H", "source=cli", "-H", "v=2",
                      "--output", "json", stdin=b"k1:hello\nk2:wor:ld\nk3:\n"))
    assert produced.json() == {"topic": topic_name, "records": 3, "partitions": {
        "0": {"first_offset": 0, "last_offset": 2, "records": 3}}}
    records = ok(cli("consume", topic_name, "--output", "json")).json_lines()
    assert [(r["key"], r["value"], r["offset"]) for r in records] == [
        ("k1", "hello", 0), ("k2", "wor:ld", 1), ("k3", "", 2)]
    assert all(r["headers"] == [{"key": "source", "value": "cli"}, {"key": "v", "value": "2"}]
               and r["topic"] == topic_name and r["partition"] == 0
               and r["timestamp_type"] == "CreateTime" and r["timestamp"] > 0
               for r in records)


def test_plain_output_and_summary(cli: Cli, topic_name: str) -> None:
    result = ok(cli("produce", topic_name, stdin=b"one\r\ntwo\n\nfour"))
    assert result.stderr.strip() == (
        f"Produced 4 records to '{topic_name}' (partition 0, offsets 0-3).")
    consumed = ok(cli("consume", topic_name))
    assert consumed.stdout == "one\ntwo\n\nfour\n"
    assert consumed.stderr.strip() == f"Consumed 4 records from '{topic_name}'."
    keyed = ok(cli("consume", topic_name, "--print-key", "--key-separator", "|", "-q"))
    assert keyed.stdout.splitlines()[0] == "null|one"
    assert keyed.stderr == ""


def test_file_delimiter_null_marker_and_template(cli: Cli, topic_name: str,
                                                 tmp_path: Path) -> None:
    data = tmp_path / "records.bin"
    data.write_bytes(b"a=\x00\xff\x01\x1eb=NULL\x1eNULL=orphan\x1e")
    ok(cli("produce", topic_name, "--file", str(data), "--delimiter", "\\x1e",
           "--key-separator", "=", "--null-marker", "NULL"))
    records = ok(cli("consume", topic_name, "--output", "json")).json_lines()
    assert records[0]["key"] == "a" and records[0]["value_base64"] == "AP8B"
    assert "value" not in records[0]
    assert records[1]["key"] == "b" and records[1]["value"] is None  # a tombstone
    assert records[2]["key"] is None and records[2]["value"] == "orphan"
    templated = ok(cli("consume", topic_name, "-f", "%t|%p|%o|%K|%S|%k|%s|%%\\n"))
    lines = templated.stdout_bytes.split(b"\n")
    assert lines[0] == f"{topic_name}|0|0|1|3|a|".encode() + b"\x00\xff\x01|%"
    assert lines[1] == f"{topic_name}|0|1|1|-1|b||%".encode()
    assert lines[2] == f"{topic_name}|0|2|-1|6||orphan|%".encode()


def test_partition_acks_and_compression(cli: Cli, topic_name: str) -> None:
    ok(cli("topics", "create", topic_name, "--partitions", "3"))
    for n, (acks, codec) in enumerate([("0", "gzip"), ("1", "snappy"), ("all", "lz4"),
                                       ("-1", "zstd"), ("1", "none")]):
        ok(cli("produce", topic_name, "--partition", "2", "--acks", acks,
               "--compression", codec, stdin=f"{codec}-{n}\n".encode()))
    records = ok(cli("consume", topic_name, "--output", "json")).json_lines()
    assert {r["partition"] for r in records} == {2}
    assert [r["value"] for r in records] == [
        "gzip-0", "snappy-1", "lz4-2", "zstd-3", "none-4"]


def test_keys_spread_over_partitions_like_the_java_client(cli: Cli, topic_name: str) -> None:
    ok(cli("topics", "create", topic_name, "--partitions", "4"))
    lines = b"".join(b"key-%d:v\n" % i for i in range(40))
    summary = ok(cli("produce", topic_name, "-K", ":", "--output", "json", stdin=lines)).json()
    assert summary["records"] == 40 and len(summary["partitions"]) > 1
    records = ok(cli("consume", topic_name, "--output", "json")).json_lines()
    by_key = {r["key"]: r["partition"] for r in records}
    assert len(by_key) == 40
    for key, partition in by_key.items():
        assert partition == (murmur2(key.encode()) & 0x7FFFFFFF) % 4


def murmur2(data: bytes) -> int:
    """Kafka's Utils.murmur2, which the Java client's partitioner hashes keys with."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    h = 0x9747B28C ^ len(data)
    whole = len(data) & ~3
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    tail = data[whole:]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h


def test_start_positions(cli: Cli, topic_name: str) -> None:
    ok(cli("produce", topic_name, stdin=b"".join(b"m%d\n" % i for i in range(10))))
    time.sleep(0.02)
    middle = int(time.time() * 1000)
    time.sleep(0.02)
    ok(cli("produce", topic_name, stdin=b"late-1\nlate-2\n"))

    def values(*args: str) -> list[str]:
        return ok(cli("consume", topic_name, "-q", *args)).stdout.splitlines()

    assert len(values()) == 12
    assert values("--offset", "7") == ["m7", "m8", "m9", "late-1", "late-2"]
    assert values("--offset", "-3") == ["m9", "late-1", "late-2"]
    assert values("--offset", "-100") == values("--from-beginning")
    assert values("--offset", "1000") == []
    assert values("--from-end") == [] == values("-o", "end")
    assert values("-o", "beginning") == values()
    assert values("--from-timestamp", str(middle)) == ["late-1", "late-2"]
    assert values("--from-timestamp", "1d") == values()
    assert values("--max-messages", "2") == ["m0", "m1"]
    assert values("--partition", "0", "-c", "1", "--offset", "4") == ["m4"]


def test_stop_at_end_of_empty_and_multi_partition_topics(cli: Cli, topic_name: str) -> None:
    ok(cli("topics", "create", topic_name, "--partitions", "3"))
    empty = ok(cli("consume", topic_name))
    assert empty.stdout == ""
    ok(cli("produce", topic_name, "--partition", "1", stdin=b"x\n"))
    assert ok(cli("consume", topic_name)).stdout == "x\n"


def test_follow_waits_for_new_records(broker: EmbeddedBroker, topic_name: str) -> None:
    ok(run_cli("produce", topic_name, "-b", broker.bootstrap, stdin=b"first\n"))
    follower = subprocess.Popen(
        [sys.executable, "-m", "strom", "consume", topic_name, "--follow", "-c", "3",
         "-b", broker.bootstrap, "--output", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert follower.stdout is not None
        first = follower.stdout.readline()  # it has started and read what was there
        assert b'"first"' in first
        ok(run_cli("produce", topic_name, "-b", broker.bootstrap, stdin=b"second\nthird\n"))
        rest, err = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0, err
    assert [b'"second"' in line or b'"third"' in line
            for line in rest.splitlines()] == [True, True]


def test_large_file_produce(cli: Cli, topic_name: str, tmp_path: Path) -> None:
    data = tmp_path / "big.txt"
    data.write_bytes(b"".join(b"record number %06d\n" % i for i in range(20000)))
    summary = ok(cli("produce", topic_name, "--file", str(data), "--output", "json")).json()
    assert summary["records"] == 20000
    lines = ok(cli("consume", topic_name, "-q")).stdout.splitlines()
    assert len(lines) == 20000 and lines[-1] == "record number 019999"


def test_produce_errors(cli: Cli, topic_name: str, tmp_path: Path) -> None:
    missing_separator = cli("produce", topic_name, "-K", ":", stdin=b"a:1\nno separator\n")
    assert missing_separator.code == 1
    assert missing_separator.stderr.strip() == (
        "strom produce: error: record 2 has no key separator ':' (1 produced before it)")
    assert ok(cli("consume", topic_name, "-q")).stdout == "1\n"

    bad_partition = cli("produce", topic_name, "--partition", "9", stdin=b"x\n")
    assert bad_partition.code == 1
    assert "has 1 partitions; there is no partition 9" in bad_partition.stderr

    missing_file = cli("produce", topic_name, "--file", str(tmp_path / "nope"))
    assert missing_file.code == 2 and "cannot read" in missing_file.stderr

    assert cli("produce", topic_name, "--acks", "2").code == 2
    assert cli("produce", topic_name, "--compression", "brotli").code == 2
    assert cli("produce", topic_name, "-H", "novalue").code == 2


def test_produce_to_unknown_topic_without_auto_create(tmp_path: Path) -> None:
    with EmbeddedBroker(tmp_path / "data",
                        overrides={"auto.create.topics.enable": "false"}) as strict:
        result = run_cli("produce", "not-there", "-b", strict.bootstrap, stdin=b"x\n")
    assert result.code == 1
    assert result.stderr.strip() == "strom produce: error: unknown topic 'not-there'"


def test_consume_errors(cli: Cli, topic_name: str) -> None:
    unknown = cli("consume", "no-such-topic")
    assert unknown.code == 1
    assert unknown.stderr.strip() == "strom consume: error: unknown topic 'no-such-topic'"
    ok(cli("produce", topic_name, stdin=b"x\n"))
    for args, message in [
        (["-f", "%q"], "unknown format code %q"),
        (["-f", "%s", "--output", "json"], "exclude each other"),
        (["--from-timestamp", "yesterday"], "bad timestamp"),
        (["--group", "g", "--partition", "0"], "cannot be used with --group"),
        (["--no-commit"], "only applies with --group"),
        (["--max-messages", "0"], "at least 1"),
        (["--offset", "1", "--from-end"], "not allowed with"),
        (["--offset", "middle"], "not an offset"),
    ]:
        result = cli("consume", topic_name, *args)
        assert result.code == 2, args
        assert message in result.stderr, (args, result.stderr)
    wrong_partition = cli("consume", topic_name, "--partition", "3")
    assert wrong_partition.code == 1 and "no partition 3" in wrong_partition.stderr


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_binary_values_pass_through_plain_output(cli: Cli, topic_name: str, codec: str) -> None:
    payload = bytes(range(256)).replace(b"\n", b"")
    ok(cli("produce", topic_name, "--compression", codec, stdin=payload + b"\n"))
    assert ok(cli("consume", topic_name, "-q")).stdout_bytes == payload + b"\n"
