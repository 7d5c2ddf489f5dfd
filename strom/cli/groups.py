"""`strom groups list|describe|reset-offsets|delete`, like
kafka-consumer-groups: committed offsets and lag per partition."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from strom.cli.common import (
    CliError,
    Session,
    add_command,
    describe_error,
    kafka_admin,
    network_parent,
    parse_timestamp,
    parse_topic_partitions,
)
from strom.cli.output import Style, print_json, render_table

if TYPE_CHECKING:
    from confluent_kafka import TopicPartition

#: confluent_kafka.admin.ConsumerGroupDescription (its stubs do not export it)
ConsumerGroupDescription = Any

LIST_EXAMPLES = """\
  strom groups list
  strom groups list --output json
"""
DESCRIBE_EXAMPLES = """\
  strom groups describe billing          # offsets, end offsets and lag per partition
  strom groups describe billing shipping --output json
"""
RESET_EXAMPLES = """\
  strom groups reset-offsets billing --topic orders --to-earliest            # dry run
  strom groups reset-offsets billing --topic orders --to-earliest --execute
  strom groups reset-offsets billing --topic orders:0,1 --to-offset 100 --execute
  strom groups reset-offsets billing --all-topics --shift-by -50 --execute
  strom groups reset-offsets billing --topic orders --to-datetime 2024-05-01T00:00:00Z --execute
"""
DELETE_EXAMPLES = """\
  strom groups delete billing
  strom groups delete old-1 old-2
"""

#: Group states in which offsets may be reset (no live members).
_INACTIVE = {"EMPTY", "DEAD", "UNKNOWN"}


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "groups", help="list, describe, reset offsets of and delete consumer groups",
        description="List, describe, reset the offsets of, and delete consumer groups.")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    net = network_parent()

    add_command(actions, "list", run_list, parents=[net], examples=LIST_EXAMPLES,
                help="list consumer groups", description="List consumer groups and "
                "their states.")

    describe = add_command(
        actions, "describe", run_describe, parents=[net], examples=DESCRIBE_EXAMPLES,
        help="show members, committed offsets and lag",
        description="Show a group's state and, per partition, the committed offset, the "
                    "log end offset, the lag between them and the member it is assigned to.")
    describe.add_argument("groups", nargs="+", metavar="GROUP")

    reset = add_command(
        actions, "reset-offsets", run_reset, parents=[net], examples=RESET_EXAMPLES,
        help="move a group's committed offsets",
        description="Move a group's committed offsets. The group must have no active "
                    "members. Without --execute, only shows what would change.")
    reset.add_argument("group", metavar="GROUP")
    scope = reset.add_mutually_exclusive_group(required=True)
    scope.add_argument("--topic", action="append", metavar="TOPIC[:P,P]",
                       help="a topic, or some of its partitions (repeatable)")
    scope.add_argument("--all-topics", action="store_true",
                       help="every partition the group has committed offsets for")
    target = reset.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-earliest", action="store_true", help="the first offset")
    target.add_argument("--to-latest", action="store_true", help="the end offset")
    target.add_argument("--to-offset", type=int, metavar="N", help="offset N")
    target.add_argument("--shift-by", type=int, metavar="N",
                        help="N past (or, negative, before) the committed offset")
    target.add_argument("--to-datetime", metavar="TIME",
                        help="the first record at or after TIME (ms since the epoch, "
                             "ISO 8601, or a duration ago: 15m, 2h, 7d)")
    reset.add_argument("--execute", action="store_true",
                       help="apply the new offsets (default: dry run)")

    delete = add_command(actions, "delete", run_delete, parents=[net],
                         examples=DELETE_EXAMPLES, help="delete consumer groups",
                         description="Delete consumer groups and their committed offsets. "
                                     "A group must have no active members.")
    delete.add_argument("groups", nargs="+", metavar="GROUP")


def _state(value: Any) -> str:
    name = getattr(value, "name", None)
    return str(name if name is not None else value or "UNKNOWN")


# ------------------------------------------------------------------ list


def run_list(args: argparse.Namespace) -> int:
    session = Session(args)
    session.metadata()
    result = session.wait(session.admin().list_consumer_groups(**session.admin_options),
                          "cannot list groups")
    if result.errors:
        raise CliError(f"cannot list groups: {describe_error(result.errors[0])}")
    groups = sorted(result.valid, key=lambda g: g.group_id)
    rows = [{"group": g.group_id, "state": _state(getattr(g, "state", None)),
             "simple": g.is_simple_consumer_group} for g in groups]
    if args.output == "json":
        print_json(rows)
        return 0
    render_table(["GROUP", "STATE"], [(r["group"], r["state"]) for r in rows])
    return 0


# ------------------------------------------------------------------ describe


def _describe_group(session: Session, group: str) -> ConsumerGroupDescription | None:
    """The description, or None if the group does not exist."""
    futures = session.admin().describe_consumer_groups([group], **session.admin_options)
    try:
        description: ConsumerGroupDescription = session.wait(
            futures[group], f"cannot describe group '{group}'")
    except CliError as exc:
        if "GROUP_ID_NOT_FOUND" in str(exc):
            return None
        raise
    return description


def committed_offsets(session: Session, group: str) -> dict[tuple[str, int], int]:
    """Every committed offset of the group (OffsetFetch for all topics)."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    futures = session.admin().list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group)], **session.admin_options)
    result = session.wait(futures[group], f"cannot fetch offsets of group '{group}'")
    offsets: dict[tuple[str, int], int] = {}
    for tp in result.topic_partitions or []:
        if tp.error is None and tp.offset >= 0:
            offsets[(tp.topic, tp.partition)] = tp.offset
    return offsets


def list_offsets(session: Session, partitions: list[tuple[str, int]],
                 spec: Any) -> dict[tuple[str, int], int]:
    """ListOffsets for every partition with one ka.OffsetSpec."""
    from confluent_kafka import TopicPartition

    if not partitions:
        return {}
    requests = {TopicPartition(t, p): spec for t, p in partitions}
    futures = session.admin().list_offsets(requests, **session.admin_options)
    offsets: dict[tuple[str, int], int] = {}
    for tp, future in futures.items():
        info = session.wait(future, f"cannot list offsets of {tp.topic}-{tp.partition}")
        offsets[(tp.topic, tp.partition)] = int(info.offset)
    return offsets


def _group_document(session: Session, group: str) -> dict[str, Any]:
    ka = kafka_admin()

    description = _describe_group(session, group)
    committed = committed_offsets(session, group)
    state = _state(description.state) if description is not None else "DEAD"
    members = description.members if description is not None else []
    if state in ("DEAD", "UNKNOWN") and not members and not committed:
        raise CliError(f"group '{group}' does not exist")
    owners: dict[tuple[str, int], Any] = {}
    for member in members:
        for tp in (member.assignment.topic_partitions or []) if member.assignment else []:
            owners[(tp.topic, tp.partition)] = member
    keys = sorted(set(committed) | set(owners))
    ends = list_offsets(session, keys, ka.OffsetSpec.latest())
    partitions = []
    for key in keys:
        current = committed.get(key)
        end = ends.get(key)
        member = owners.get(key)
        partitions.append({
            "topic": key[0], "partition": key[1], "current_offset": current,
            "log_end_offset": end,
            "lag": max(end - current, 0) if current is not None and end is not None else None,
            "consumer_id": member.member_id if member else None,
            "host": (member.host or None) if member else None,
            "client_id": member.client_id if member else None,
        })
    coordinator = description.coordinator if description is not None else None
    return {
        "group": group,
        "state": state,
        "coordinator": coordinator.id if coordinator is not None else None,
        "assignor": (description.partition_assignor or None) if description else None,
        "members": [{"consumer_id": m.member_id, "client_id": m.client_id, "host": m.host,
                     "group_instance_id": m.group_instance_id,
                     "partitions": [[tp.topic, tp.partition] for tp in
                                    ((m.assignment.topic_partitions or [])
                                     if m.assignment else [])]}
                    for m in members],
        "partitions": partitions,
        "total_lag": sum(p["lag"] or 0 for p in partitions),
    }


def run_describe(args: argparse.Namespace) -> int:
    session = Session(args)
    session.metadata()
    documents = [_group_document(session, g) for g in dict.fromkeys(args.groups)]
    if args.output == "json":
        print_json(documents)
        return 0
    style = Style(sys.stdout)
    for n, doc in enumerate(documents):
        if n:
            print()
        print(f"{style('Group: ' + doc['group'], 'bold', 'cyan')}  State: {doc['state']}  "
              f"Members: {len(doc['members'])}  Coordinator: {doc['coordinator']}  "
              f"Total lag: {doc['total_lag']}")
        if not doc["partitions"]:
            print("No committed offsets and no assigned partitions.")
            continue
        rows = [(p["topic"], p["partition"], p["current_offset"], p["log_end_offset"],
                 style(str(p["lag"]), "yellow") if p["lag"] else p["lag"],
                 p["consumer_id"], p["host"], p["client_id"]) for p in doc["partitions"]]
        render_table(["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
                      "CONSUMER-ID", "HOST", "CLIENT-ID"], rows, numeric=(1, 2, 3, 4))
    return 0


# ------------------------------------------------------------------ reset


def _reset_scope(session: Session, args: argparse.Namespace,
                 committed: dict[tuple[str, int], int]) -> list[tuple[str, int]]:
    if args.all_topics:
        if not committed:
            raise CliError(f"group '{args.group}' has no committed offsets; name the "
                           "partitions with --topic")
        return sorted(committed)
    metadata = session.metadata()
    keys: list[tuple[str, int]] = []
    for spec in args.topic:
        name, wanted = parse_topic_partitions(spec)
        topic = session.topic(metadata, name)
        for p in wanted if wanted is not None else sorted(topic.partitions):
            if p not in topic.partitions:
                raise CliError(f"topic '{name}' has no partition {p}")
            keys.append((name, p))
    return sorted(set(keys))


def _targets(session: Session, args: argparse.Namespace, keys: list[tuple[str, int]],
             committed: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
    ka = kafka_admin()

    low = list_offsets(session, keys, ka.OffsetSpec.earliest())
    high = list_offsets(session, keys, ka.OffsetSpec.latest())
    at: dict[tuple[str, int], int] = {}
    if args.to_datetime is not None:
        at = list_offsets(session, keys, ka.OffsetSpec.for_timestamp(
            parse_timestamp(args.to_datetime)))
    targets: dict[tuple[str, int], int] = {}
    for key in keys:
        if args.to_earliest:
            offset = low[key]
        elif args.to_latest:
            offset = high[key]
        elif args.to_offset is not None:
            offset = args.to_offset
        elif args.shift_by is not None:
            if key not in committed:
                raise CliError(f"group '{args.group}' has no committed offset for "
                               f"{key[0]}-{key[1]} to shift")
            offset = committed[key] + args.shift_by
        else:
            offset = at[key] if at[key] >= 0 else high[key]
        targets[key] = min(max(offset, low[key]), high[key])
    return targets


def run_reset(args: argparse.Namespace) -> int:
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    if args.to_datetime is not None:
        parse_timestamp(args.to_datetime)  # a bad time is a usage error, before connecting
    session = Session(args)
    session.metadata()
    description = _describe_group(session, args.group)
    state = _state(description.state) if description is not None else "DEAD"
    if state not in _INACTIVE or (description is not None and description.members):
        raise CliError(f"group '{args.group}' has active members (state {state}); stop its "
                       "consumers before resetting offsets")
    committed = committed_offsets(session, args.group)
    keys = _reset_scope(session, args, committed)
    targets = _targets(session, args, keys, committed)
    if args.execute:
        request = [TopicPartition(t, p, offset) for (t, p), offset in targets.items()]
        futures = session.admin().alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(args.group, request)], **session.admin_options)
        result = session.wait(futures[args.group],
                              f"cannot reset offsets of group '{args.group}'")
        _check_partition_errors(result.topic_partitions or [], args.group)
    rows = [{"topic": t, "partition": p, "previous_offset": committed.get((t, p)),
             "new_offset": offset} for (t, p), offset in targets.items()]
    if args.output == "json":
        print_json({"group": args.group, "executed": args.execute, "partitions": rows})
        return 0
    render_table(["GROUP", "TOPIC", "PARTITION", "PREVIOUS-OFFSET", "NEW-OFFSET"],
                 [(args.group, r["topic"], r["partition"], r["previous_offset"],
                   r["new_offset"]) for r in rows], numeric=(2, 3, 4))
    if not args.execute:
        print("Dry run: nothing changed. Add --execute to apply.", file=sys.stderr)
    return 0


def _check_partition_errors(partitions: list[TopicPartition], group: str) -> None:
    for tp in partitions:
        if tp.error is not None:
            raise CliError(f"cannot reset offsets of group '{group}' for "
                           f"{tp.topic}-{tp.partition}: {describe_error(tp.error)}")


# ------------------------------------------------------------------ delete


def run_delete(args: argparse.Namespace) -> int:
    session = Session(args)
    session.metadata()
    names = list(dict.fromkeys(args.groups))
    futures = session.admin().delete_consumer_groups(names, **session.admin_options)
    deleted = []
    for name in names:
        try:
            session.wait(futures[name], f"cannot delete group '{name}'")
        except CliError as exc:
            if "GROUP_ID_NOT_FOUND" in str(exc):
                raise CliError(f"group '{name}' does not exist") from None
            if "NON_EMPTY_GROUP" in str(exc):
                raise CliError(f"group '{name}' has active members; stop its consumers "
                               "first") from None
            raise
        deleted.append(name)
    if args.output == "json":
        print_json({"deleted": deleted})
    else:
        for name in deleted:
            print(f"Deleted group '{name}'.")
    return 0

