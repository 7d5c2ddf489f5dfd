"""The `strom` command."""

from __future__ import annotations

import argparse
import sys

from strom.cli import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="strom",
        description="strom: an event streaming platform that speaks the Kafka protocol.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve.register(commands)
    args = parser.parse_args(argv)
    sys.exit(args.run(args))


if __name__ == "__main__":
    main()
