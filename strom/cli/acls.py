"""`strom acls add|list|remove`: ACLs like kafka-acls, through CreateAcls,
DescribeAcls and DeleteAcls (any Kafka-compatible cluster with an authorizer).

Options follow kafka-acls.sh: --allow-principal/--deny-principal (TYPE:NAME,
repeatable), --allow-host/--deny-host (default "*"), --operation (Kafka's
names: Read, Write, Create, Delete, Alter, Describe, ClusterAction,
DescribeConfigs, AlterConfigs, IdempotentWrite, CreateTokens,
DescribeTokens, All; repeatable), the resources --topic, --group,
--transactional-id (repeatable) and --cluster, --resource-pattern-type
(literal, prefixed; for list and remove also any and match), and the
shortcuts --producer (Write, Describe, Create on the topics) and --consumer
(Read, Describe on the topics, Read on the groups).
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any

from strom.cli.common import (
    Session,
    UsageError,
    add_command,
    kafka_admin,
    network_parent,
)
from strom.cli.output import print_json, render_table

#: confluent_kafka.admin.AclBinding / AclBindingFilter (its stubs do not export them)
AclBinding = Any

CLUSTER_NAME = "kafka-cluster"

ADD_EXAMPLES = """\
  strom acls add --allow-principal User:alice --operation Read --operation Describe --topic orders
  strom acls add --allow-principal User:svc --producer --topic pay- --resource-pattern-type prefixed
  strom acls add --allow-principal User:bob --consumer --topic orders --group billing
  strom acls add --deny-principal User:mallory --deny-host 10.0.0.9 --operation All --topic '*'
  strom acls add --allow-principal User:admin --operation Alter --cluster
"""

LIST_EXAMPLES = """\
  strom acls list                                  # every ACL
  strom acls list --topic orders                   # ACLs of the literal pattern 'orders'
  strom acls list --topic orders --resource-pattern-type match  # all that apply to it
  strom acls list --principal User:alice --output json
"""

REMOVE_EXAMPLES = """\
  strom acls remove --allow-principal User:alice --operation Read --topic orders
  strom acls remove --topic orders                 # every ACL of the pattern 'orders'
  strom acls remove --principal User:bob --resource-pattern-type any --topic orders
"""

#: Kafka's operation names (AclCommand accepts them in any case) -> AclOperation names.
OPERATIONS = {
    "read": "READ", "write": "WRITE", "create": "CREATE", "delete": "DELETE",
    "alter": "ALTER", "describe": "DESCRIBE", "clusteraction": "CLUSTER_ACTION",
    "describeconfigs": "DESCRIBE_CONFIGS", "alterconfigs": "ALTER_CONFIGS",
    "idempotentwrite": "IDEMPOTENT_WRITE", "createtokens": "CREATE_TOKENS",
    "describetokens": "DESCRIBE_TOKENS", "all": "ALL",
}


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "acls", help="add, list or remove ACLs",
        description="Add, list or remove ACLs (Kafka's authorizer must be on: "
                    "authorizer.class.name).")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    net = network_parent()
    add = add_command(actions, "add", run_add, parents=[net], examples=ADD_EXAMPLES,
                      help="add ACLs",
                      description="Add ACLs: each principal x host x operation x resource.")
    _entry_args(add)
    _resource_args(add, ("literal", "prefixed"))
    add.add_argument("--producer", action="store_true",
                     help="Write, Describe and Create on the topics")
    add.add_argument("--consumer", action="store_true",
                     help="Read and Describe on the topics, Read on the groups")
    listing = add_command(actions, "list", run_list, parents=[net], examples=LIST_EXAMPLES,
                          help="list ACLs",
                          description="List the ACLs matching the resources and principal "
                                      "given (all ACLs without any).")
    _resource_args(listing, ("literal", "prefixed", "any", "match"))
    listing.add_argument("--principal", action="append", default=[], metavar="TYPE:NAME",
                         help="only ACLs of this principal (repeatable)")
    remove = add_command(actions, "remove", run_remove, parents=[net],
                         examples=REMOVE_EXAMPLES, help="remove ACLs",
                         description="Remove the ACLs matching the options given; a "
                                     "resource without principals or operations loses "
                                     "every ACL of its pattern.")
    _entry_args(remove)
    remove.add_argument("--principal", action="append", default=[], metavar="TYPE:NAME",
                        help="ACLs of this principal, allow or deny (repeatable)")
    _resource_args(remove, ("literal", "prefixed", "any", "match"))


def _entry_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-principal", action="append", default=[],
                        metavar="TYPE:NAME", help="principal allowed (repeatable)")
    parser.add_argument("--deny-principal", action="append", default=[],
                        metavar="TYPE:NAME", help="principal denied (repeatable)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="IP",
                        help="host of the allow ACLs (repeatable; default *)")
    parser.add_argument("--deny-host", action="append", default=[], metavar="IP",
                        help="host of the deny ACLs (repeatable; default *)")
    parser.add_argument("--operation", action="append", default=[], metavar="OPERATION",
                        help="Read, Write, Create, Delete, Alter, Describe, ClusterAction, "
                             "DescribeConfigs, AlterConfigs, IdempotentWrite, All, ... "
                             "(repeatable; add's default: All)")


def _resource_args(parser: argparse.ArgumentParser, pattern_types: tuple[str, ...]) -> None:
    group = parser.add_argument_group("resources")
    group.add_argument("--topic", action="append", default=[], metavar="NAME",
                       help="a topic ('*': every topic; repeatable)")
    group.add_argument("--group", action="append", default=[], metavar="NAME",
                       help="a consumer group (repeatable)")
    group.add_argument("--transactional-id", action="append", default=[], metavar="ID",
                       help="a transactional id (repeatable)")
    group.add_argument("--cluster", action="store_true", help="the cluster")
    group.add_argument("--resource-pattern-type", default="literal",
                       type=str.lower, choices=pattern_types,
                       help="how resource names match (default: literal)")


def _resources(args: argparse.Namespace) -> list[tuple[Any, str]]:
    ka = kafka_admin()
    found = [(ka.ResourceType.TOPIC, name) for name in args.topic]
    found += [(ka.ResourceType.GROUP, name) for name in args.group]
    found += [(ka.ResourceType.TRANSACTIONAL_ID, name) for name in args.transactional_id]
    if args.cluster:
        found.append((ka.ResourceType.BROKER, CLUSTER_NAME))
    return found


def _operations(names: list[str]) -> list[Any]:
    ka = kafka_admin()
    operations = []
    for name in names:
        key = OPERATIONS.get(name.replace("_", "").replace("-", "").lower())
        if key is None:
            raise UsageError(f"unknown operation {name!r}; one of: Read, Write, Create, "
                             "Delete, Alter, Describe, ClusterAction, DescribeConfigs, "
                             "AlterConfigs, IdempotentWrite, CreateTokens, DescribeTokens, "
                             "All")
        operations.append(getattr(ka.AclOperation, key))
    return list(dict.fromkeys(operations))


def _check_principals(principals: list[str]) -> None:
    for principal in principals:
        kind, sep, _ = principal.partition(":")
        if not sep or not kind:
            raise UsageError(f"a principal is TYPE:NAME (e.g. User:alice), not {principal!r}")


def _pattern(args: argparse.Namespace) -> Any:
    return getattr(kafka_admin().ResourcePatternType, args.resource_pattern_type.upper())


def _bindings(args: argparse.Namespace) -> list[AclBinding]:
    ka = kafka_admin()
    resources = _resources(args)
    if not resources:
        raise UsageError("name a resource: --topic, --group, --transactional-id or --cluster")
    if not args.allow_principal and not args.deny_principal:
        raise UsageError("give --allow-principal or --deny-principal")
    _check_principals(args.allow_principal + args.deny_principal)
    per_type: dict[Any, list[Any]] = {}
    if args.producer or args.consumer:
        if args.operation:
            raise UsageError("--producer/--consumer choose the operations; drop --operation")
        if args.producer:
            per_type.setdefault(ka.ResourceType.TOPIC, []).extend(
                [ka.AclOperation.WRITE, ka.AclOperation.DESCRIBE, ka.AclOperation.CREATE])
        if args.consumer:
            if not args.group:
                raise UsageError("--consumer needs the consumer's --group")
            per_type.setdefault(ka.ResourceType.TOPIC, []).extend(
                [ka.AclOperation.READ, ka.AclOperation.DESCRIBE])
            per_type.setdefault(ka.ResourceType.GROUP, []).append(ka.AclOperation.READ)
    operations = _operations(args.operation or ["All"])
    bindings: list[AclBinding] = []
    pattern = _pattern(args)
    entries = [(p, h, ka.AclPermissionType.ALLOW) for p, h in itertools.product(
        args.allow_principal, args.allow_host or ["*"])]
    entries += [(p, h, ka.AclPermissionType.DENY) for p, h in itertools.product(
        args.deny_principal, args.deny_host or ["*"])]
    for restype, name in resources:
        ops = per_type.get(restype, []) if per_type else operations
        for principal, host, permission in entries:
            for op in dict.fromkeys(ops):
                bindings.append(ka.AclBinding(restype, name, pattern, principal, host, op,
                                              permission))
    return bindings


def _filters(args: argparse.Namespace, principals: list[str | None],
             operations: list[Any], permission: Any,
             hosts: list[str | None] | None = None) -> list[Any]:
    ka = kafka_admin()
    pattern = _pattern(args)
    resources: list[tuple[Any, str | None]] = list(_resources(args)) or [
        (ka.ResourceType.ANY, None)]
    if not resources[0][1]:
        pattern = ka.ResourcePatternType.ANY  # no resource named: every pattern
    return [ka.AclBindingFilter(restype, name, pattern, principal, host, op, permission)
            for restype, name in resources for principal in principals
            for host in (hosts or [None]) for op in operations]


def _row(binding: AclBinding) -> tuple[str, str, str, str, str, str, str]:
    restype = "CLUSTER" if binding.restype.name == "BROKER" else binding.restype.name
    return (restype, binding.name, binding.resource_pattern_type.name, binding.principal,
            binding.host, binding.operation.name, binding.permission_type.name)


_HEADERS = ["RESOURCE", "NAME", "PATTERN", "PRINCIPAL", "HOST", "OPERATION", "PERMISSION"]


def _json(binding: AclBinding) -> dict[str, str]:
    return dict(zip([h.lower() for h in _HEADERS], _row(binding), strict=True))


def _show(args: argparse.Namespace, bindings: list[AclBinding], verb: str) -> None:
    bindings = sorted(set(bindings), key=_row)
    if args.output == "json":
        print_json({verb: [_json(b) for b in bindings]})
    elif bindings:
        render_table(_HEADERS, [_row(b) for b in bindings])
    else:
        print(f"No ACLs {verb}.")


def run_add(args: argparse.Namespace) -> int:
    bindings = _bindings(args)
    session = Session(args)
    session.metadata()
    futures = session.admin().create_acls(bindings, **session.admin_options)
    for binding, future in futures.items():
        session.wait(future, f"cannot add the ACL {' '.join(_row(binding))}")
    _show(args, bindings, "added")
    return 0


def run_list(args: argparse.Namespace) -> int:
    ka = kafka_admin()
    _check_principals(args.principal)
    session = Session(args)
    session.metadata()
    found: list[AclBinding] = []
    for wanted in _filters(args, list(args.principal) or [None], [ka.AclOperation.ANY],
                           ka.AclPermissionType.ANY):
        found += session.wait(session.admin().describe_acls(wanted, **session.admin_options),
                              "cannot list ACLs")
    _show(args, found, "found")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    ka = kafka_admin()
    if not _resources(args):
        raise UsageError("name a resource: --topic, --group, --transactional-id or --cluster")
    given = args.allow_principal + args.deny_principal + args.principal
    _check_principals(given)
    operations = _operations(args.operation) if args.operation else [ka.AclOperation.ANY]
    filters: list[Any] = []
    if args.allow_principal:
        filters += _filters(args, args.allow_principal, operations, ka.AclPermissionType.ALLOW,
                            list(args.allow_host))
    if args.deny_principal:
        filters += _filters(args, args.deny_principal, operations, ka.AclPermissionType.DENY,
                            list(args.deny_host))
    if args.principal or not (args.allow_principal or args.deny_principal):
        filters += _filters(args, list(args.principal) or [None], operations,
                            ka.AclPermissionType.ANY)
    session = Session(args)
    session.metadata()
    removed: list[AclBinding] = []
    futures = session.admin().delete_acls(filters, **session.admin_options)
    for future in futures.values():
        removed += session.wait(future, "cannot remove ACLs")
    _show(args, removed, "removed")
    return 0
