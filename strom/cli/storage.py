"""`strom storage format`: prepare a single node's metadata before its first
start, as `kafka-storage.sh format` does; today that means SCRAM credentials
(`--add-scram`, Kafka's syntax), so the first users can log in with SCRAM
before any admin exists.

    strom storage format --config server.properties \\
        --add-scram 'SCRAM-SHA-256=[name=alice,password=alice-secret]' \\
        --add-scram 'SCRAM-SHA-512=[name=admin,iterations=8192,password=admin-secret]'

As Kafka's tool, a data directory that is already formatted (its metadata
file exists) is refused unless --ignore-formatted, which leaves it as it is;
users of a running cluster are managed with `strom users`. A cluster (etcd
metadata) is refused: its credentials are written through the controller.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
from typing import Any

from strom.cli.common import CliError, UsageError
from strom.cluster.image import ScramCredentialRecord

EXAMPLES = """examples:
  strom storage format --config server.properties \\
      --add-scram 'SCRAM-SHA-256=[name=alice,password=alice-secret]'
  strom storage format --override log.dirs=/var/lib/strom \\
      --add-scram 'SCRAM-SHA-512=[name=admin,iterations=8192,password=admin-secret]'
"""


def register(commands: Any) -> None:
    parser = commands.add_parser("storage", help="prepare a data directory before first start",
                                 description="Data directory tools (kafka-storage.sh).")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    fmt = actions.add_parser(
        "format", help="write SCRAM credentials before the first start", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write the metadata of a single node before its first start: SCRAM "
                    "credentials from --add-scram, in kafka-storage.sh's syntax.")
    fmt.add_argument("--config", type=argparse.FileType("r"), metavar="FILE",
                     help="the broker's server.properties")
    fmt.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                     help="set a property, after the file (repeatable)")
    fmt.add_argument("--add-scram", "-S", action="append", default=[], metavar="CREDENTIAL",
                     help="MECHANISM=[name=USER,password=PASSWORD] with optional "
                          "iterations=N, or salt=BASE64 and saltedpassword=BASE64 "
                          "(repeatable)")
    fmt.add_argument("--ignore-formatted", "-g", action="store_true",
                     help="leave an already formatted data directory as it is")
    fmt.set_defaults(run=run_format, command_name="strom storage format")


def parse_add_scram(text: str) -> ScramCredentialRecord:
    """One --add-scram value (Kafka's StorageTool syntax) as its record."""
    from strom.security.sasl.scram import (
        DEFAULT_ITERATIONS,
        MAX_ITERATIONS,
        MECHANISM_CODES,
        MIN_ITERATIONS,
        credential_from_password,
        credential_from_salted_password,
    )

    mechanism, sep, rest = text.partition("=")
    mechanism = mechanism.strip()
    if not sep or mechanism not in MECHANISM_CODES:
        raise UsageError(f"--add-scram {text!r}: expected SCRAM-SHA-256=[name=...,password=...] "
                         "or SCRAM-SHA-512=[...]")
    rest = rest.strip()
    if not (rest.startswith("[") and rest.endswith("]")):
        raise UsageError(f"--add-scram {text!r}: the credential must be in [...]")
    fields: dict[str, str] = {}
    for item in rest[1:-1].split(","):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"--add-scram {text!r}: {item!r} is not key=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        fields[key.strip().lower()] = value
    name = fields.get("name")
    if not name:
        raise UsageError(f"--add-scram {text!r}: name= is required")
    try:
        iterations = int(fields.get("iterations", DEFAULT_ITERATIONS))
    except ValueError:
        raise UsageError(f"--add-scram {text!r}: iterations must be a number") from None
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise UsageError(f"--add-scram {text!r}: iterations must be between {MIN_ITERATIONS} "
                         f"and {MAX_ITERATIONS}")
    if "password" in fields:
        salt = base64.b64decode(fields["salt"]) if "salt" in fields else None
        return credential_from_password(name, mechanism, fields["password"], iterations, salt)
    if "saltedpassword" in fields and "salt" in fields:
        return credential_from_salted_password(
            name, mechanism, base64.b64decode(fields["salt"]),
            base64.b64decode(fields["saltedpassword"]), iterations)
    raise UsageError(f"--add-scram {text!r}: password= (or salt= and saltedpassword=) "
                     "is required")


def run_format(args: argparse.Namespace) -> int:
    from strom.cluster.local import LocalMetadataStore
    from strom.config import BrokerConfig, parse_properties
    from strom.errors import KafkaError

    records = [parse_add_scram(text) for text in args.add_scram]
    if not records:
        raise UsageError("nothing to write: give --add-scram")
    try:
        properties = parse_properties(args.config.read()) if args.config else {}
        for item in args.override:
            key, sep, value = item.partition("=")
            if not sep:
                raise UsageError(f"--override expects KEY=VALUE, got {item!r}")
            properties[key.strip()] = value
        config = BrokerConfig.from_properties(properties)
    except KafkaError as exc:
        raise UsageError(str(exc)) from None
    if config.etcd_endpoints:
        raise UsageError("a cluster's credentials are written through its controller: use "
                         "`strom users add` once it runs")
    directory = config.log_dirs[0]
    store = LocalMetadataStore(directory, node_id=config.node_id,
                               cluster_id=str(config.get("cluster.id") or ""),
                               listener=("localhost", 0))
    if store.path.exists():
        if args.ignore_formatted:
            print(f"{directory} is already formatted; left as it is.")
            return 0
        raise CliError(f"{directory} is already formatted ({store.path} exists); use "
                       "--ignore-formatted to leave it, or `strom users` once the broker runs")
    directory.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(store.commit(records))
    except KafkaError as exc:
        raise CliError(str(exc)) from None
    users = sorted({(r.name, r.mechanism) for r in records})
    print(f"Formatted {directory} with {len(users)} SCRAM credential(s).")
    return 0
