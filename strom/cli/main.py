"""The `strom` command."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from strom.cli.common import EXIT_INTERRUPTED, CliError, add_group_examples
from strom.cli.output import Style

EXAMPLES = """examples:
  strom serve                                      # a broker on localhost:9092
  strom topics create orders --partitions 3
  printf 'k1:hello\\nk2:world\\n' | strom produce orders --key-separator :
  strom consume orders --from-beginning --output json
  strom groups describe billing
  strom cluster status                             # brokers, under-replicated partitions
  strom dump-log data/orders-0/00000000000000000000.log --print-data

Every network command takes --bootstrap-server (default localhost:9092) and
works against any Kafka-compatible cluster. Exit codes: 0 success, 1 the
operation failed, 2 bad arguments, 3 cannot connect within --timeout.
"""


#: The commands, in the order `strom --help` lists them; each is the module
#: strom.cli.<name> with "-" as "_".
COMMANDS = ("serve", "topics", "produce", "consume", "groups", "configs", "acls", "users",
            "storage", "quotas", "cluster", "dump-log", "console")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="strom",
        description="strom: an event streaming platform that speaks the Kafka protocol.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    given = sys.argv[1:] if argv is None else argv
    first = next((arg for arg in given if not arg.startswith("-")), None)
    # Only the command given is imported: every command imported every other
    # one, serve's broker included (`strom topics --help` took 0.10 s and 30 MiB,
    # now 0.03 s and 14 MiB); all of them for `strom --help` and for a command
    # argparse will refuse.
    for name in [first] if first in COMMANDS else list(COMMANDS):
        importlib.import_module(f"strom.cli.{name.replace('-', '_')}").register(commands)
    add_group_examples(parser)
    args = parser.parse_args(argv)
    sys.exit(_run(args))


class _VersionAction(argparse.Action):
    """`strom --version`; looks the version up only when asked (package
    metadata costs start-up time every other command would pay)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print strom's version and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        print(f"strom {_version()}")
        parser.exit()


def _version() -> str:
    """The installed distribution's version; the source's when run from a
    checkout that is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("strom")
    except PackageNotFoundError:
        from strom import __version__

        return __version__


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.run(args))
    except CliError as exc:
        style = Style(sys.stderr)
        prog = getattr(args, "command_name", "strom")
        print(f"{prog}: {style('error:', 'bold', 'red')} {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`strom consume t | head`): stop quietly, and
        # keep Python from complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0


if __name__ == "__main__":
    main()
