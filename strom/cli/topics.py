"""`strom topics list|describe|create|delete|alter`, like kafka-topics."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from strom.cli.common import (
    CliError,
    ClusterMetadata,
    Session,
    TopicMetadata,
    UsageError,
    add_command,
    add_hidden_alias,
    kafka_admin,
    network_parent,
    parse_key_values,
    parse_timestamp,
)
from strom.cli.configs import (
    add_alter_args,
    alter_configs,
    is_override,
    parse_alter_args,
    source_name,
)
from strom.cli.output import Style, print_json, render_table

LIST_EXAMPLES = """\
  strom topics list
  strom topics list --exclude-internal --output json
  strom topics list -b kafka-1:9092 --timeout 5
"""
DESCRIBE_EXAMPLES = """\
  strom topics describe orders            # partitions, leaders, offsets, config overrides
  strom topics describe                   # every topic
  strom topics describe orders payments --output json
"""
CREATE_EXAMPLES = """\
  strom topics create orders --partitions 6
  strom topics create users --config cleanup.policy=compact --if-not-exists
  strom topics create events --partitions 3 -r 1 -c retention.ms=86400000
"""
DELETE_EXAMPLES = """\
  strom topics delete orders
  strom topics delete scratch-1 scratch-2 --if-exists
"""
ALTER_EXAMPLES = """\
  strom topics alter orders --partitions 12           # partitions can only grow
  strom topics alter orders --config retention.ms=3600000 --delete-config cleanup.policy
"""
DELETE_RECORDS_EXAMPLES = """\
  strom topics delete-records orders --offset 1200 -p 0      # partition 0 now starts at 1200
  strom topics delete-records orders --before-timestamp 7d   # every partition, older than 7 days
  strom topics delete-records scratch --all                  # empty every partition
"""


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "topics", help="list, describe, create, delete and alter topics; trim partitions",
        description="List, describe, create, delete and alter topics; delete the records "
                    "at the start of partitions.")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    net = network_parent()

    listing = add_command(actions, "list", run_list, parents=[net], examples=LIST_EXAMPLES,
                          help="list topics", description="List topics with their "
                          "partition count and replication factor.")
    listing.add_argument("--exclude-internal", action="store_true",
                         help="leave out internal topics (names starting with __)")

    describe = add_command(
        actions, "describe", run_describe, parents=[net], examples=DESCRIBE_EXAMPLES,
        help="show partitions, leaders, replicas, offsets and config overrides",
        description="Show each partition's leader, replicas, in-sync replicas, start "
                    "and end offsets, and the topic's non-default configs.")
    describe.add_argument("topics", nargs="*", metavar="TOPIC",
                          help="topics to describe (default: all)")

    create = add_command(actions, "create", run_create, parents=[net],
                         examples=CREATE_EXAMPLES, help="create topics",
                         description="Create topics.")
    create.add_argument("topics", nargs="+", metavar="TOPIC")
    create.add_argument("--partitions", type=int, default=-1, metavar="N",
                        help="number of partitions (default: the broker's num.partitions)")
    add_hidden_alias(create, "-p", dest="partitions", type=int)
    create.add_argument("-r", "--replication-factor", type=int, default=-1,
                        help="replicas per partition (default: the broker's default)")
    create.add_argument("-c", "--config", action="append", default=[], metavar="KEY=VALUE",
                        help="topic config, e.g. retention.ms=86400000 (repeatable)")
    add_hidden_alias(create, "--set", dest="config", action="append")
    create.add_argument("--if-not-exists", action="store_true",
                        help="succeed if the topic already exists")
    create.add_argument("--validate-only", action="store_true",
                        help="ask the cluster to check the request without creating anything")

    delete = add_command(actions, "delete", run_delete, parents=[net],
                         examples=DELETE_EXAMPLES, help="delete topics",
                         description="Delete topics and all their data.")
    delete.add_argument("topics", nargs="+", metavar="TOPIC")
    delete.add_argument("--if-exists", action="store_true",
                        help="succeed if a topic does not exist")

    alter = add_command(actions, "alter", run_alter, parents=[net], examples=ALTER_EXAMPLES,
                        help="add partitions or change configs",
                        description="Add partitions to a topic or change its configs.")
    alter.add_argument("topic", metavar="TOPIC")
    alter.add_argument("--partitions", type=int, metavar="N",
                       help="new total number of partitions (can only grow)")
    add_alter_args(alter)
    # -p is a partition everywhere else (produce, consume, delete-records);
    # here it stays accepted, unlisted, for scripts and rpk habits (`-p 3`).
    add_hidden_alias(alter, "-p", dest="partitions", type=int)

    trim = add_command(
        actions, "delete-records", run_delete_records, parents=[net],
        examples=DELETE_RECORDS_EXAMPLES, aliases=["trim-prefix"],  # rpk's name
        help="delete the records before an offset (trim a partition's start)",
        description="Delete every record before an offset, a timestamp or the end of "
                    "partitions (DeleteRecords, as kafka-delete-records and rpk's topic "
                    "trim-prefix): the partition's start offset (log start offset) moves "
                    "up and its older records are no longer readable.")
    trim.add_argument("topic", metavar="TOPIC")
    trim.add_argument("-p", "--partition", type=int, action="append", metavar="P",
                      help="only partition P (repeatable; default: every partition)")
    where = trim.add_mutually_exclusive_group(required=True)
    where.add_argument("-o", "--offset", type=int, metavar="N",
                       help="delete the records before offset N (N itself is kept)")
    where.add_argument("--before-timestamp", metavar="TIME",
                       help="delete the records before the first one at or after TIME: ms "
                            "since the epoch, ISO 8601, or a duration ago like 7d")
    where.add_argument("--all", action="store_true",
                       help="delete every record up to each partition's end")


def _is_internal(name: str) -> bool:
    return name.startswith("__")


def _replication_factor(topic: TopicMetadata) -> int:
    partitions = topic.partitions.values()
    return max((len(p.replicas) for p in partitions), default=0)


def run_list(args: argparse.Namespace) -> int:
    session = Session(args)
    metadata = session.metadata()
    topics = sorted(metadata.topics.values(), key=lambda t: t.topic)
    if args.exclude_internal:
        topics = [t for t in topics if not _is_internal(t.topic)]
    if args.output == "json":
        print_json([{"topic": t.topic, "partitions": len(t.partitions),
                     "replication_factor": _replication_factor(t),
                     "internal": _is_internal(t.topic)} for t in topics])
        return 0
    rows = [(t.topic, len(t.partitions), _replication_factor(t)) for t in topics]
    render_table(["TOPIC", "PARTITIONS", "REPLICATION-FACTOR"], rows, numeric=(1, 2))
    return 0


def _offsets(session: Session, topics: list[TopicMetadata]) -> dict[tuple[str, int],
                                                                   tuple[int, int]]:
    """(start offset, end offset) of every partition, by ListOffsets."""
    from confluent_kafka import TopicPartition
    ka = kafka_admin()

    partitions = [TopicPartition(t.topic, p) for t in topics for p in sorted(t.partitions)]
    if not partitions:
        return {}
    admin = session.admin()
    earliest = admin.list_offsets({tp: ka.OffsetSpec.earliest() for tp in partitions},
                                  **session.admin_options)
    latest = admin.list_offsets({tp: ka.OffsetSpec.latest() for tp in partitions},
                                **session.admin_options)
    result: dict[tuple[str, int], tuple[int, int]] = {}
    for tp in partitions:
        key = (tp.topic, tp.partition)
        start = session.wait(earliest[tp], f"cannot list offsets of {tp.topic}-{tp.partition}")
        end = session.wait(latest[tp], f"cannot list offsets of {tp.topic}-{tp.partition}")
        result[key] = (start.offset, end.offset)
    return result


TOPIC_OVERRIDE = "DYNAMIC_TOPIC_CONFIG"


def _config_overrides(session: Session, topics: list[TopicMetadata]
                      ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Per topic: its own overrides (DescribeConfigs source DYNAMIC_TOPIC_CONFIG),
    and the non-default values it inherits from the brokers' configs (static
    server.properties or dynamic broker defaults), with their source. Kafka's
    own defaults are left out of both."""
    ka = kafka_admin()

    resources = [ka.ConfigResource(ka.ResourceType.TOPIC, t.topic) for t in topics]
    if not resources:
        return {}, {}
    futures = session.admin().describe_configs(resources, **session.admin_options)
    overrides: dict[str, dict[str, Any]] = {}
    inherited: dict[str, dict[str, Any]] = {}
    for resource in resources:
        entries = session.wait(futures[resource], f"cannot describe configs of {resource.name}")
        mine = overrides.setdefault(resource.name, {})
        theirs = inherited.setdefault(resource.name, {})
        for e in sorted(entries.values(), key=lambda e: e.name):
            if not is_override(e):
                continue
            value = None if e.is_sensitive else e.value
            source = source_name(e)
            if source == TOPIC_OVERRIDE:
                mine[e.name] = value
            else:
                theirs[e.name] = {"value": value, "source": source}
    return overrides, inherited


def run_describe(args: argparse.Namespace) -> int:
    session = Session(args)
    metadata = session.metadata()
    if args.topics:
        topics = [session.topic(metadata, name) for name in dict.fromkeys(args.topics)]
    else:
        topics = sorted(metadata.topics.values(), key=lambda t: t.topic)
    offsets = _offsets(session, topics)
    configs, broker_defaults = _config_overrides(session, topics)
    documents = []
    for topic in topics:
        partitions = []
        for pid in sorted(topic.partitions):
            p = topic.partitions[pid]
            start, end = offsets.get((topic.topic, pid), (-1, -1))
            partitions.append({
                "partition": pid, "leader": p.leader, "replicas": list(p.replicas),
                "isr": list(p.isrs), "start_offset": start, "end_offset": end,
            })
        documents.append({
            "topic": topic.topic, "partitions": partitions,
            "replication_factor": _replication_factor(topic),
            "configs": configs.get(topic.topic, {}),
            "broker_defaults": broker_defaults.get(topic.topic, {}),
        })
    if args.output == "json":
        print_json(documents)
        return 0
    style = Style(sys.stdout)
    for n, doc in enumerate(documents):
        if n:
            print()
        overrides = " ".join(f"{k}={v}" for k, v in doc["configs"].items()) or "-"
        print(f"{style('Topic: ' + doc['topic'], 'bold', 'cyan')}  "
              f"Partitions: {len(doc['partitions'])}  "
              f"Replication factor: {doc['replication_factor']}  Configs: {overrides}")
        if doc["broker_defaults"]:
            inherited = " ".join(f"{k}={v['value']} ({v['source']})"
                                 for k, v in doc["broker_defaults"].items())
            print(f"Broker defaults: {inherited}")
        rows = [(p["partition"], p["leader"], p["replicas"], p["isr"], p["start_offset"],
                 p["end_offset"], max(p["end_offset"] - p["start_offset"], 0))
                for p in doc["partitions"]]
        render_table(["PARTITION", "LEADER", "REPLICAS", "ISR", "START-OFFSET", "END-OFFSET",
                      "RECORDS"], rows, numeric=(0, 1, 4, 5, 6))
    return 0


def run_create(args: argparse.Namespace) -> int:
    ka = kafka_admin()

    if args.partitions == 0 or args.partitions < -1:
        raise UsageError("--partitions must be at least 1")
    if args.replication_factor == 0 or args.replication_factor < -1:
        raise UsageError("--replication-factor must be at least 1")
    config = parse_key_values(args.config, "--config")
    session = Session(args)
    session.metadata()
    names = list(dict.fromkeys(args.topics))
    new_topics = [ka.NewTopic(name, num_partitions=args.partitions,
                           replication_factor=args.replication_factor, config=config)
                  for name in names]
    futures = session.admin().create_topics(
        new_topics, operation_timeout=session.timeout, validate_only=args.validate_only,
        **session.admin_options)
    created: list[str] = []
    existing: list[str] = []
    for name in names:
        try:
            session.wait(futures[name], f"cannot create topic '{name}'")
        except CliError as exc:
            if args.if_not_exists and "TOPIC_ALREADY_EXISTS" in str(exc):
                existing.append(name)
                continue
            if "TOPIC_ALREADY_EXISTS" in str(exc):
                raise CliError(f"topic '{name}' already exists") from None
            raise
        created.append(name)
    verb = "Validated" if args.validate_only else "Created"
    if args.output == "json":
        print_json({"created": created, "existing": existing,
                    "validate_only": args.validate_only})
    else:
        for name in created:
            print(f"{verb} topic '{name}'.")
        for name in existing:
            print(f"Topic '{name}' already exists.")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    session = Session(args)
    metadata = session.metadata()
    names = list(dict.fromkeys(args.topics))
    missing = [name for name in names if name not in metadata.topics]
    if missing and not args.if_exists:
        raise CliError(f"unknown topic '{missing[0]}'")
    present = [name for name in names if name not in missing]
    deleted: list[str] = []
    if present:
        futures = session.admin().delete_topics(
            present, operation_timeout=session.timeout, **session.admin_options)
        for name in present:
            try:
                session.wait(futures[name], f"cannot delete topic '{name}'")
            except CliError as exc:
                if args.if_exists and "UNKNOWN_TOPIC_OR_PART" in str(exc):
                    continue
                raise
            deleted.append(name)
    if args.output == "json":
        print_json({"deleted": deleted, "missing": missing})
    else:
        for name in deleted:
            print(f"Deleted topic '{name}'.")
    return 0


def run_alter(args: argparse.Namespace) -> int:
    ka = kafka_admin()

    set_configs, delete_configs = parse_alter_args(args)
    if args.partitions is None and not set_configs and not delete_configs:
        raise UsageError("nothing to alter: give --partitions, --config or --delete-config")
    if args.partitions is not None and args.partitions < 1:
        raise UsageError("--partitions must be at least 1")
    session = Session(args)
    metadata: ClusterMetadata = session.metadata()
    topic = session.topic(metadata, args.topic)
    before = len(topic.partitions)
    changes: list[str] = []
    if args.partitions is not None and args.partitions != before:
        futures = session.admin().create_partitions(
            [ka.NewPartitions(args.topic, args.partitions)], operation_timeout=session.timeout,
            **session.admin_options)
        session.wait(futures[args.topic], f"cannot add partitions to '{args.topic}'")
        changes.append(f"partitions {before} -> {args.partitions}")
    if set_configs or delete_configs:
        alter_configs(session, ka.ResourceType.TOPIC, args.topic, set_configs, delete_configs)
        changes += [f"{k}={v}" for k, v in set_configs.items()]
        changes += [f"-{k}" for k in delete_configs]
    if args.output == "json":
        print_json({"topic": args.topic,
                    "partitions": args.partitions if args.partitions is not None else before,
                    "set": set_configs, "deleted": delete_configs})
    else:
        print(f"Altered topic '{args.topic}': {', '.join(changes) or 'no change'}")
    return 0


def run_delete_records(args: argparse.Namespace) -> int:
    from confluent_kafka import OFFSET_END, TopicPartition

    ka = kafka_admin()
    if args.offset is not None and args.offset < 0:
        raise UsageError("--offset must be at least 0 (--all deletes up to the end)")
    session = Session(args)
    topic = session.topic(session.metadata(), args.topic)
    partitions = sorted(topic.partitions)
    if args.partition:
        missing = [p for p in args.partition if p not in topic.partitions]
        if missing:
            raise CliError(f"topic '{args.topic}' has {len(partitions)} partitions; "
                           f"there is no partition {missing[0]}")
        partitions = sorted(set(args.partition))
    targets = [TopicPartition(args.topic, p) for p in partitions]
    admin = session.admin()
    if args.before_timestamp is not None:
        timestamp = parse_timestamp(args.before_timestamp)
        found = admin.list_offsets({tp: ka.OffsetSpec.for_timestamp(timestamp)
                                    for tp in targets}, **session.admin_options)
        for tp in targets:
            info = session.wait(found[tp], f"cannot look up offsets of {tp.topic}-{tp.partition}")
            # -1: no record at or after TIME, so every record is older
            tp.offset = int(info.offset) if info.offset >= 0 else OFFSET_END
    else:
        for tp in targets:
            tp.offset = OFFSET_END if args.all else args.offset
    futures = admin.delete_records(targets, operation_timeout=session.timeout,
                                   **session.admin_options)
    starts: list[tuple[int, int]] = []
    for tp in targets:
        deleted = session.wait(futures[tp],
                               f"cannot delete records of {tp.topic}-{tp.partition}")
        starts.append((tp.partition, int(deleted.low_watermark)))
    if args.output == "json":
        print_json({"topic": args.topic, "partitions": [
            {"partition": p, "start_offset": start} for p, start in starts]})
    else:
        render_table(["PARTITION", "START-OFFSET"], starts, numeric=(0, 1))
    return 0
