"""`strom users add|list|delete`: SCRAM credentials, as kafka-configs.sh
--entity-type users --add-config 'SCRAM-SHA-256=[password=...]' manages them,
through AlterUserScramCredentials and DescribeUserScramCredentials (any
Kafka-compatible cluster). The password is salted and hashed by the client;
only the salted password crosses the wire, only the derived keys are stored.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from strom.cli.common import CliError, Session, UsageError, add_command, kafka_admin, network_parent
from strom.cli.output import print_json, render_table

MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")

ADD_EXAMPLES = """\
  strom users add alice --password alice-secret       # SCRAM-SHA-256 and SCRAM-SHA-512
  strom users add svc --mechanism SCRAM-SHA-512 --iterations 8192 < password.txt
  strom users add alice --command-config admin.properties   # prompts for the password
"""
LIST_EXAMPLES = """\
  strom users list
  strom users list alice --output json
"""
DELETE_EXAMPLES = """\
  strom users delete alice                              # every SCRAM credential of alice
  strom users delete alice --mechanism SCRAM-SHA-256
"""


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "users", help="add, list or delete SCRAM users",
        description="SCRAM credentials of users (SASL/SCRAM-SHA-256 and SCRAM-SHA-512).")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    net = network_parent()
    add = add_command(actions, "add", run_add, parents=[net], examples=ADD_EXAMPLES,
                      help="add a user or change its password",
                      description="Add SCRAM credentials for a user (or replace them). "
                                  "Without --password the password is prompted for, or read "
                                  "from standard input when it is not a terminal.")
    add.add_argument("name")
    add.add_argument("--password", help="the password (visible in the process list: "
                                        "prefer the prompt or standard input)")
    add.add_argument("--mechanism", action="append", choices=MECHANISMS,
                     help="SCRAM mechanism (repeatable; default: both)")
    add.add_argument("--iterations", type=int, default=4096,
                     help="PBKDF2 iterations, 4096-16384 (default: 4096)")
    listing = add_command(actions, "list", run_list, parents=[net], examples=LIST_EXAMPLES,
                          help="list users and their mechanisms",
                          description="Users with SCRAM credentials (all without names).")
    listing.add_argument("names", nargs="*", metavar="NAME")
    delete = add_command(actions, "delete", run_delete, parents=[net],
                         examples=DELETE_EXAMPLES, help="delete a user's SCRAM credentials",
                         description="Delete SCRAM credentials of a user.")
    delete.add_argument("name")
    delete.add_argument("--mechanism", action="append", choices=MECHANISMS,
                        help="only this mechanism's credential (repeatable; default: every "
                             "one the user has)")


def _mechanism(name: str) -> Any:
    return kafka_admin().ScramMechanism[name.replace("-", "_")]


def _password(args: argparse.Namespace) -> str:
    if args.password is not None:
        password = str(args.password)
    elif sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise UsageError("the password must not be empty")
    return password


def _alter(session: Session, changes: list[Any], what: str) -> None:
    futures = session.admin().alter_user_scram_credentials(changes, **session.admin_options)
    for future in futures.values():
        session.wait(future, what)


def run_add(args: argparse.Namespace) -> int:
    ka = kafka_admin()
    if not 4096 <= args.iterations <= 16384:
        raise UsageError("--iterations must be between 4096 and 16384 (Kafka's bounds)")
    password = _password(args).encode("utf-8")
    mechanisms = args.mechanism or list(MECHANISMS)
    session = Session(args)
    session.metadata()
    # One request per mechanism: Kafka refuses a user named twice in one request.
    for name in dict.fromkeys(mechanisms):
        info = ka.ScramCredentialInfo(_mechanism(name), args.iterations)
        _alter(session, [ka.UserScramCredentialUpsertion(args.name, info, password)],
               f"cannot set the {name} credential of {args.name}")
    print(f"User {args.name}: {', '.join(dict.fromkeys(mechanisms))} set.")
    return 0


def _describe(session: Session, names: list[str]) -> list[tuple[str, list[tuple[str, int]]]]:
    from confluent_kafka import KafkaException

    admin: Any = session.admin()  # its stubs type the two call forms as one
    found: list[tuple[str, list[tuple[str, int]]]] = []
    if names:
        futures = admin.describe_user_scram_credentials(names, **session.admin_options)
        for name, future in futures.items():
            description = session.wait(future, f"cannot describe user {name}")
            found.append((name, [(i.mechanism.name.replace("_", "-"), i.iterations)
                                 for i in description.scram_credential_infos]))
        return found
    future = admin.describe_user_scram_credentials(**session.admin_options)
    try:
        descriptions = future.result(timeout=session.timeout + 5)
    except KafkaException as exc:
        raise CliError(f"cannot list users: {exc.args[0].str()}") from None
    for name, description in sorted(descriptions.items()):
        found.append((name, [(i.mechanism.name.replace("_", "-"), i.iterations)
                             for i in description.scram_credential_infos]))
    return found


def run_list(args: argparse.Namespace) -> int:
    session = Session(args)
    session.metadata()
    users = _describe(session, list(args.names))
    if args.output == "json":
        print_json({"users": [{"name": name, "credentials": [
            {"mechanism": m, "iterations": i} for m, i in creds]} for name, creds in users]})
    elif users:
        render_table(("USER", "MECHANISM", "ITERATIONS"),
                     [(name, m, i) for name, creds in users for m, i in creds])
    else:
        print("No SCRAM users.")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    ka = kafka_admin()
    session = Session(args)
    session.metadata()
    mechanisms = args.mechanism
    if not mechanisms:
        ((_, creds),) = _describe(session, [args.name])
        mechanisms = [m for m, _ in creds]
    for name in dict.fromkeys(mechanisms):
        _alter(session, [ka.UserScramCredentialDeletion(args.name, _mechanism(name))],
               f"cannot delete the {name} credential of {args.name}")
    print(f"User {args.name}: {', '.join(dict.fromkeys(mechanisms))} deleted.")
    return 0
