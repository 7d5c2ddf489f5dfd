"""What every command shares: help, exit codes, connection errors, colour and
TTY handling, the `python -m strom` entry point, and the small parsers."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from strom.cli.common import UsageError, parse_timestamp, parse_topic_partitions
from strom.cli.formats import ConsumedRecord, json_formatter, template_formatter
from strom.cli.output import Progress, Style, render_table
from strom.cli.produce import split_records, unescape
from strom.testing import EmbeddedBroker
from tests.cli.conftest import Cli, ok, run_cli
from tests.cli.terminal import run_on_terminal

COMMANDS = [
    ["topics", "list"], ["topics", "describe"], ["topics", "create"], ["topics", "delete"],
    ["topics", "alter"], ["topics", "delete-records"], ["produce"], ["consume"],
    ["groups", "list"],
    ["groups", "describe"], ["groups", "reset-offsets"], ["groups", "delete"],
    ["configs", "describe"], ["configs", "alter"], ["dump-log"], ["serve"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_has_examples(command: list[str]) -> None:
    result = run_cli(*command, "--help")
    assert result.code == 0
    assert "examples:" in result.stdout and f"strom {' '.join(command)}" in result.stdout
    if command not in (["dump-log"], ["serve"]):
        assert "--bootstrap-server" in result.stdout and "--timeout" in result.stdout


GROUPS = [["topics"], ["groups"], ["configs"], ["acls"], ["users"], ["storage"], ["quotas"],
          ["cluster"], ["cluster", "reassign"], ["cluster", "features"]]


@pytest.mark.parametrize("group", GROUPS, ids=" ".join)
def test_group_help_ends_with_its_commands_examples(group: list[str]) -> None:
    result = run_cli(*group, "--help")
    assert result.code == 0
    before, examples = result.stdout.split("\nexamples:\n")
    assert "ACTION" in before or "STEP" in before or "COMMAND" in before
    lines = [line for line in examples.splitlines() if line.strip()]
    assert len(lines) >= 2
    prefix = f"  strom {' '.join(group)} "
    assert all(line.startswith(prefix) or line.startswith("      ") for line in lines), lines


def test_version() -> None:
    from importlib.metadata import version

    result = run_cli("--version")
    assert result.code == 0
    assert result.stdout == f"strom {version('strom')}\n"


def test_a_command_imports_no_other_commands_module() -> None:
    """A command imports no other command's module (each imported all of
    them, serve's broker included); `strom --help` still lists them all."""
    script = (
        "import sys\n"
        "from strom.cli import main\n"
        "try:\n"
        "    main.main(['serve', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('strom.cli.'))))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, check=True)
    loaded = set(result.stdout.splitlines()[-1].split())
    from strom.cli.main import COMMANDS

    assert "strom.cli.serve" in loaded
    others = {f"strom.cli.{name.replace('-', '_')}" for name in COMMANDS if name != "serve"}
    assert not loaded & others, sorted(loaded & others)


def test_top_level_help_and_missing_command() -> None:
    top = run_cli("--help")
    assert top.code == 0 and "dump-log" in top.stdout and "Exit codes" in top.stdout
    assert run_cli().code == 2
    assert run_cli("no-such-command").code == 2


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("command", [
    ["topics", "list"], ["produce", "t"], ["consume", "t"], ["groups", "list"],
    ["configs", "describe", "--broker"],
], ids=" ".join)
def test_cannot_connect_exits_3_within_the_timeout(command: list[str]) -> None:
    port = _closed_port()
    result = run_cli(*command, "--bootstrap-server", f"127.0.0.1:{port}", "--timeout", "1",
                     stdin=b"x\n")
    assert result.code == 3
    assert result.stderr.strip() == (
        f"strom {command[0] if command[0] in ('produce', 'consume') else ' '.join(command[:2])}"
        f": error: cannot connect to 127.0.0.1:{port} within 1s: Connection refused")


def test_client_properties_from_x_and_command_config(cli: Cli, topic_name: str,
                                                     tmp_path: Path) -> None:
    config = tmp_path / "client.properties"
    config.write_text("# librdkafka properties\nclient.id = from-file\n")
    ok(cli("produce", topic_name, "--command-config", str(config), "-X", "linger.ms=0",
           stdin=b"x\n"))
    bad = cli("topics", "list", "-X", "no.such.property=1")
    assert bad.code == 2
    assert "invalid client configuration" in bad.stderr and "no.such.property" in bad.stderr
    assert cli("topics", "list", "--command-config", str(tmp_path / "nope")).code == 2


def test_entry_point_and_json_output(broker: EmbeddedBroker, topic_name: str) -> None:
    env = {**os.environ, "STROM_BOOTSTRAP_SERVER": broker.bootstrap}
    created = subprocess.run([sys.executable, "-m", "strom", "topics", "create", topic_name,
                              "--output", "json"], capture_output=True, env=env, timeout=60)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["created"] == [topic_name]
    listed = subprocess.run([sys.executable, "-m", "strom", "topics", "list", "--output",
                             "json"], capture_output=True, env=env, timeout=60)
    assert topic_name in [t["topic"] for t in json.loads(listed.stdout)]
    assert b"\x1b[" not in listed.stdout + listed.stderr


def _on_a_terminal(args: list[str], env: dict[str, str]) -> bytes:
    """Run strom with stdout on a pseudo-terminal; what it printed there."""
    code, err, terminal = run_on_terminal(args, "stdout", env)
    assert code == 0, err
    return terminal


def test_colour_only_on_a_terminal_and_never_with_no_color(broker: EmbeddedBroker) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["STROM_BOOTSTRAP_SERVER"] = broker.bootstrap
    env["TERM"] = "xterm"
    coloured = _on_a_terminal(["topics", "list"], env)
    assert b"\x1b[1m" in coloured and b"TOPIC" in coloured
    plain = _on_a_terminal(["topics", "list"], {**env, "NO_COLOR": "1"})
    assert b"\x1b[" not in plain and b"TOPIC" in plain


def test_broken_pipe_is_quiet(cli: Cli, broker: EmbeddedBroker, topic_name: str) -> None:
    ok(cli("produce", topic_name, stdin=b"line\n" * 20000))
    reader = subprocess.Popen([sys.executable, "-m", "strom", "consume", topic_name, "-q",
                               "-b", broker.bootstrap],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert reader.stdout is not None
    assert reader.stdout.readline() == b"line\n"
    reader.stdout.close()  # like `| head -1`
    _, err = reader.communicate(timeout=60)
    assert reader.returncode == 0
    assert b"Traceback" not in err and b"BrokenPipe" not in err


# ------------------------------------------------------------------ small parts


def test_parse_timestamp() -> None:
    assert parse_timestamp("1714521600000") == 1714521600000
    assert parse_timestamp("2024-05-01T00:00:00Z") == 1714521600000
    assert parse_timestamp("2024-05-01T02:00:00+02:00") == 1714521600000
    import time
    now = time.time() * 1000
    assert abs(parse_timestamp("15m") - (now - 900_000)) < 5000
    assert parse_timestamp("-15m") == pytest.approx(parse_timestamp("15m"), abs=5000)
    assert abs(parse_timestamp("2d") - (now - 2 * 86_400_000)) < 5000
    with pytest.raises(UsageError):
        parse_timestamp("tomorrow")


def test_parse_topic_partitions() -> None:
    assert parse_topic_partitions("orders") == ("orders", None)
    assert parse_topic_partitions("orders:0,2") == ("orders", [0, 2])
    for bad in ("orders:x", ":1", "orders:"):
        with pytest.raises(UsageError):
            parse_topic_partitions(bad)


def test_unescape() -> None:
    assert unescape("\\n") == b"\n"
    assert unescape("a\\tb\\0\\x1e\\\\") == b"a\tb\0\x1e\\"
    assert unescape("\\q") == b"\\q"
    assert unescape("é") == "é".encode()


class _Trickle(io.RawIOBase):
    """A stream that gives one byte per read, like a slow pipe."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk, self.data = self.data[:1], self.data[1:]
        return chunk


@pytest.mark.parametrize("delimiter", [b"\n", b"||", b"\0"])
def test_split_records_whole_and_one_byte_at_a_time(delimiter: bytes) -> None:
    records = [b"a", b"", b"bb" * 40000, b"c|d"]
    data = delimiter.join(records) + delimiter
    read: list[int] = []
    whole = list(split_records(io.BytesIO(data), delimiter, read.append))
    assert whole == records and sum(read) == len(data)
    trickled = list(split_records(_Trickle(data), delimiter, lambda n: None))  # type: ignore[arg-type]
    assert trickled == records
    unterminated = list(split_records(io.BytesIO(data + b"tail"), delimiter, lambda n: None))
    assert unterminated == [*records, b"tail"]


def test_templates_and_json_lines() -> None:
    record = ConsumedRecord("t", 3, 42, 1700000000000, "CreateTime", None, b"\xffv",
                            (("h1", b"x"), ("h2", None)))
    render = template_formatter("%t/%p@%o T=%T k=%k(%K) v=%S %h %%\\t%R")
    assert render(record) == b"t/3@42 T=1700000000000 k=(-1) v=2 h1=x,h2= %\t\x00\x00\x00\x02"
    with pytest.raises(UsageError):
        template_formatter("%")
    document = json.loads(json_formatter()(record))
    assert document["key"] is None and document["value_base64"] == "/3Y="
    assert document["headers"] == [{"key": "h1", "value": "x"}, {"key": "h2", "value": None}]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_style_and_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    terminal = _Terminal()
    assert Style(terminal)("x", "red") == "\x1b[31mx\x1b[0m"
    assert Style(io.StringIO())("x", "red") == "x"
    monkeypatch.setenv("NO_COLOR", "")
    assert Style(terminal)("x", "red") == "x"
    out = io.StringIO()
    render_table(["NAME", "N"], [("a", 1), ("bbb", 100), ("c", None)], stream=out,
                 numeric=[1])
    assert out.getvalue() == "NAME    N\na       1\nbbb   100\nc       -\n"


def test_progress_only_on_a_terminal() -> None:
    terminal = _Terminal()
    progress = Progress("reading", 10, "records", stream=terminal)
    progress._drawn = -1.0
    progress.advance(5)
    assert "reading [" in terminal.getvalue() and "50%" in terminal.getvalue()
    progress.close()
    assert terminal.getvalue().endswith("\r")
    quiet = io.StringIO()
    silent = Progress("reading", 10, "records", stream=quiet)
    silent.advance(10)
    silent.close()
    assert quiet.getvalue() == ""


# Every command that changes configs shows -c/--config and --delete-config;
# -p is always a partition. The older spellings still parse (hidden).
CONFIG_COMMANDS = [["topics", "create"], ["topics", "alter"], ["configs", "alter"],
                   ["quotas", "alter"]]


def test_one_spelling_of_config_and_partition_flags() -> None:
    for command in CONFIG_COMMANDS:
        text = run_cli(*command, "--help").stdout
        assert "-c KEY=VALUE, --config KEY=VALUE" in text, command
        assert "--set" not in text and "--delete " not in text, command
        if command != ["topics", "create"]:
            assert "--delete-config KEY" in text, command
    for command in (["produce"], ["consume"], ["topics", "delete-records"]):
        assert re.search(r"-p (\w+), --partition \1\b", run_cli(*command, "--help").stdout), \
            command
    for command in (["topics", "create"], ["topics", "alter"]):
        text = run_cli(*command, "--help").stdout
        assert "--partitions N" in text and "-p " not in text, command


def test_old_flag_spellings_still_parse(cli: Cli, topic_name: str) -> None:
    ok(cli("topics", "create", topic_name, "-p", "2", "--set", "retention.ms=1000"))
    ok(cli("topics", "alter", topic_name, "-p", "3", "--set", "segment.ms=3600000",
           "--delete", "retention.ms"))
    doc = ok(cli("topics", "describe", topic_name, "--output", "json")).json()[0]
    assert len(doc["partitions"]) == 3 and doc["configs"] == {"segment.ms": "3600000"}
    ok(cli("configs", "alter", "--topic", topic_name, "-c", "retention.ms=5000",
           "--delete-config", "segment.ms"))
    doc = ok(cli("topics", "describe", topic_name, "--output", "json")).json()[0]
    assert doc["configs"] == {"retention.ms": "5000"}
