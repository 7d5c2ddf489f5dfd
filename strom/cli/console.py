"""`strom console`: the web console for any Kafka-compatible cluster."""

from __future__ import annotations

import argparse
from typing import Any

from strom.cli.common import CliError, add_command, network_parent

EXAMPLES = """\
  strom console                                   # http://127.0.0.1:8080 for localhost:9092
  strom console --bootstrap-server kafka:9092 --listen 0.0.0.0:8080
"""


def register(commands: Any) -> None:
    parser = add_command(
        commands, "console", run, parents=[network_parent(output=False)], examples=EXAMPLES,
        help="serve the web console",
        description="Serve the web console: overview, topics, messages and consumer "
                    "groups of any Kafka-compatible cluster, with live throughput and lag.")
    parser.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT",
                        help="where the console listens (default 127.0.0.1:8080)")


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise CliError(f"--listen {value!r}: expected HOST:PORT", exit_code=2)
    return host.strip("[]") or "0.0.0.0", int(port)


def run(args: argparse.Namespace) -> int:
    from aiohttp import web

    from strom.cli.common import Session
    from strom.console.app import build_app
    from strom.console.cluster import Cluster

    host, port = parse_listen(args.listen)
    session = Session(args)
    # Not the session's error_cb: it keeps every client error for a one-shot
    # command's last message, which a console running for weeks must not.
    config = {k: v for k, v in session.config.items() if k != "error_cb"}
    cluster = Cluster(session.bootstrap, timeout=session.timeout,
                      config={**config, "client.id": "strom-console"})
    print(f"strom console on http://{host}:{port}/ for {session.bootstrap}", flush=True)
    web.run_app(build_app(cluster), host=host, port=port, print=None, access_log=None,
                shutdown_timeout=1.0)
    return 0
