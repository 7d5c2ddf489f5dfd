"""`strom quotas describe|alter`: client quotas by user and/or client id (or
ip), like kafka-configs --entity-type users|clients|ips, through
DescribeClientQuotas and AlterClientQuotas (raw requests: librdkafka has no
client-quota admin calls)."""

from __future__ import annotations

import argparse
from typing import Any

from strom.cli import raw_request
from strom.cli.common import (
    CliError,
    UsageError,
    add_command,
    add_hidden_alias,
    network_parent,
    parse_key_values,
)
from strom.cli.output import print_json, render_table
from strom.protocol.api import ApiKey

DESCRIBE_EXAMPLES = """\
  strom quotas describe                                  # every quota
  strom quotas describe --user alice                     # alice's, with any client id
  strom quotas describe --user alice --strict            # /users/alice only
  strom quotas describe --client-default
"""

ALTER_EXAMPLES = """\
  strom quotas alter --user alice -c producer_byte_rate=1048576
  strom quotas alter --user-default --client-id app -c consumer_byte_rate=2097152
  strom quotas alter --client-default --config request_percentage=50
  strom quotas alter --user alice --delete-config producer_byte_rate
"""

DEFAULT = "<default>"


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "quotas", help="describe or alter client quotas",
        description="Describe or alter client quotas (producer_byte_rate, consumer_byte_rate, "
                    "request_percentage, controller_mutation_rate; connection_creation_rate "
                    "for ips) of users, client ids and their defaults.")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    net = network_parent()
    describe = add_command(
        actions, "describe", run_describe, parents=[net], examples=DESCRIBE_EXAMPLES,
        help="show client quotas",
        description="Show the quotas of the entities matching the options (all without).")
    _add_entity(describe)
    describe.add_argument("--strict", action="store_true",
                          help="only entities with exactly the types named")
    alter = add_command(
        actions, "alter", run_alter, parents=[net], examples=ALTER_EXAMPLES,
        help="set or delete client quotas of one entity",
        description="Set or delete quotas of one entity (a user, a client id, both, or an ip; "
                    "--*-default for the type's default).")
    _add_entity(alter)
    # -c/--config and --delete-config, as every command that changes configs;
    # --set/--delete (this command's first spelling) stay as hidden aliases.
    alter.add_argument("-c", "--config", dest="set", action="append", default=[],
                       metavar="KEY=VALUE", help="set a quota (repeatable)")
    alter.add_argument("--delete-config", dest="delete", action="append", default=[],
                       metavar="KEY", help="remove a quota (repeatable)")
    add_hidden_alias(alter, "--set", dest="set", action="append")
    add_hidden_alias(alter, "--delete", dest="delete", action="append")
    alter.add_argument("--validate-only", action="store_true",
                       help="check the change on the controller, change nothing")


def _add_entity(parser: argparse.ArgumentParser) -> None:
    for kind, flag in (("user", "user"), ("client-id", "client"), ("ip", "ip")):
        group = parser.add_mutually_exclusive_group()
        group.add_argument(f"--{kind}", dest=kind.replace("-", "_"), metavar="NAME")
        group.add_argument(f"--{flag}-default", dest=f"{flag}_default", action="store_true",
                           help=f"the default {kind} entity")


def _entity(args: argparse.Namespace) -> dict[str, str | None]:
    """The entity the options name: type -> name (None: the default)."""
    entity: dict[str, str | None] = {}
    for kind, flag in (("user", "user"), ("client-id", "client"), ("ip", "ip")):
        name = getattr(args, kind.replace("-", "_"))
        if name is not None:
            entity[kind] = name
        elif getattr(args, f"{flag}_default"):
            entity[kind] = None
    return entity


def _address(bootstrap: str) -> tuple[str, int]:
    first = bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--bootstrap-server: not HOST:PORT: {first!r}")
    return host, int(port)


def _describe_name(entity: list[Any]) -> str:
    return ", ".join(f"{e.entity_type}={DEFAULT if e.entity_name is None else e.entity_name}"
                     for e in entity)


def run_describe(args: argparse.Namespace) -> int:
    # MATCH_EXACT (0) a name, MATCH_DEFAULT (1) the default entity.
    components = [{"entity_type": kind, "match_type": 0 if name is not None else 1,
                   "match": name} for kind, name in _entity(args).items()]
    response = raw_request.request(_address(args.bootstrap_server),
                                   ApiKey.DESCRIBE_CLIENT_QUOTAS, 1,
                                   {"components": components, "strict": args.strict},
                                   args.timeout)
    if response.error_code:
        raise CliError(f"cannot describe quotas: {raw_request.error_name(response.error_code)}"
                       + (f" ({response.error_message})" if response.error_message else ""))
    entries = sorted(response.entries or (), key=lambda e: _describe_name(e.entity))
    if args.output == "json":
        print_json([{"entity": {e.entity_type: e.entity_name for e in entry.entity},
                     "quotas": {v.key: v.value for v in entry.values}} for entry in entries])
        return 0
    render_table(["ENTITY", "QUOTA", "VALUE"],
                 [(_describe_name(entry.entity), v.key, f"{v.value:g}")
                  for entry in entries for v in sorted(entry.values, key=lambda v: v.key)])
    return 0


def run_alter(args: argparse.Namespace) -> int:
    entity = _entity(args)
    if not entity:
        raise UsageError("name an entity: --user/--user-default, --client-id/--client-default "
                         "or --ip/--ip-default")
    ops: list[dict[str, Any]] = []
    for key, text in parse_key_values(args.set, "--config").items():
        try:
            value = float(text)
        except ValueError:
            raise UsageError(f"--config {key}: not a number: {text!r}") from None
        ops.append({"key": key, "value": value, "remove": False})
    ops += [{"key": key, "value": 0.0, "remove": True} for key in args.delete]
    if not ops:
        raise UsageError("nothing to change: give --config KEY=VALUE or --delete-config KEY")
    body = {"entries": [{"entity": [{"entity_type": k, "entity_name": n}
                                    for k, n in entity.items()], "ops": ops}],
            "validate_only": args.validate_only}
    response = raw_request.request(_address(args.bootstrap_server),
                                   ApiKey.ALTER_CLIENT_QUOTAS, 1, body, args.timeout)
    result = response.entries[0]
    if result.error_code:
        raise CliError(f"cannot alter quotas of {_describe_name(result.entity)}: "
                       f"{raw_request.error_name(result.error_code)}"
                       + (f" ({result.error_message})" if result.error_message else ""))
    if args.output == "json":
        print_json({"entity": entity, "validated_only": args.validate_only})
    else:
        verb = "validated" if args.validate_only else "altered"
        print(f"Quotas of {_describe_name(result.entity)} {verb}.")
    return 0
