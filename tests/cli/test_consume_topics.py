"""`strom consume` of several topics and of regular expressions."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from strom.testing import EmbeddedBroker
from tests.cli.conftest import Cli, ok, run_cli


def _topics(cli: Cli, base: str) -> tuple[str, str, str]:
    a, b, other = f"{base}-a", f"{base}-b", f"{base}-other"
    ok(cli("topics", "create", a, b, other, "--partitions", "2"))
    ok(cli("produce", a, "-p", "0", stdin=b"a1\na2\n"))
    ok(cli("produce", b, "-p", "1", stdin=b"b1\n"))
    ok(cli("produce", other, stdin=b"o1\n"))
    return a, b, other


def _seen(records: list[dict[str, object]]) -> list[tuple[object, object]]:
    return sorted((r["topic"], r["value"]) for r in records)


def test_several_topics(cli: Cli, topic_name: str) -> None:
    a, b, _ = _topics(cli, topic_name)
    result = ok(cli("consume", a, b, "--output", "json"))
    assert _seen(result.json_lines()) == [(a, "a1"), (a, "a2"), (b, "b1")]
    assert result.stderr.strip() == f"Consumed 3 records from '{a}', '{b}'."


def test_regex_without_group_resolves_against_topics(cli: Cli, topic_name: str) -> None:
    a, b, other = _topics(cli, topic_name)
    pattern = f"^{re.escape(topic_name)}-(a|b)$"
    records = ok(cli("consume", pattern, "--output", "json")).json_lines()
    assert _seen(records) == [(a, "a1"), (a, "a2"), (b, "b1")]
    # --regex: every name is a pattern, anchored by the user or not (a search)
    records = ok(cli("consume", "-r", f"{re.escape(topic_name)}-o", "-f", "%t %s\\n",
                     "-q")).stdout
    assert records == f"{other} o1\n"
    # a pattern never matches internal topics; naming one still works
    none = cli("consume", "^__consumer_off")
    assert none.code == 1 and "no topic matches '^__consumer_off'" in none.stderr


def test_regex_with_group_subscribes_to_the_pattern(cli: Cli, topic_name: str) -> None:
    a, b, _ = _topics(cli, topic_name)
    group = f"g-{topic_name}"
    pattern = f"^{re.escape(topic_name)}-(a|b)$"
    first = ok(cli("consume", pattern, "--group", group, "--output", "json"))
    assert _seen(first.json_lines()) == [(a, "a1"), (a, "a2"), (b, "b1")]
    ok(cli("produce", b, stdin=b"b2\n"))
    # offsets were committed for both topics: only the new record comes back
    again = ok(cli("consume", pattern, "--group", group, "--output", "json"))
    assert _seen(again.json_lines()) == [(b, "b2")]
    described = ok(cli("groups", "describe", group, "--output", "json")).json()[0]
    assert {p["topic"] for p in described["partitions"]} == {a, b}
    assert described["total_lag"] == 0

def test_several_topics_errors(cli: Cli, topic_name: str) -> None:
    a, b, _ = _topics(cli, topic_name)
    for args in (["consume", a, b, "-p", "0"], ["consume", f"^{topic_name}", "-p", "0"]):
        result = cli(*args)
        assert result.code == 2 and "exactly one topic" in result.stderr, result.stderr
    bad = cli("consume", "^(")
    assert bad.code == 2 and "bad topic pattern" in bad.stderr
    missing = cli("consume", a, "no-such-topic")
    assert missing.code == 1 and "unknown topic 'no-such-topic'" in missing.stderr


def test_group_pattern_picks_up_topics_created_later(broker: EmbeddedBroker,
                                                     topic_name: str) -> None:
    b = ["-b", broker.bootstrap]
    first, later = f"{topic_name}-first", f"{topic_name}-later"
    ok(run_cli("topics", "create", first, *b))
    ok(run_cli("produce", first, *b, stdin=b"one\n"))
    follower = subprocess.Popen(
        [sys.executable, "-m", "strom", "consume", f"^{re.escape(topic_name)}-.*",
         "--group", f"g-{topic_name}", "--follow", "-c", "2", "--output", "json", *b,
         # librdkafka re-reads metadata for pattern subscriptions at this interval
         "-X", "topic.metadata.refresh.interval.ms=200"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert follower.stdout is not None
        assert b'"one"' in follower.stdout.readline()  # subscribed and reading
        ok(run_cli("topics", "create", later, *b))
        ok(run_cli("produce", later, *b, stdin=b"two\n"))
        rest, err = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0, err
    record = json.loads(rest.splitlines()[0])
    assert (record["topic"], record["value"]) == (later, "two")
