"""`strom configs describe|alter`: topic and broker configs, like
kafka-configs, through DescribeConfigs and IncrementalAlterConfigs."""

from __future__ import annotations

import argparse
from typing import Any

from strom.cli.common import (
    CliError,
    Session,
    UsageError,
    add_command,
    add_hidden_alias,
    kafka_admin,
    network_parent,
    parse_key_values,
)
from strom.cli.output import print_json, render_table

#: confluent_kafka.admin.ConfigEntry (its stubs do not export it)
ConfigEntry = Any

DESCRIBE_EXAMPLES = """\
  strom configs describe --topic orders            # overrides only
  strom configs describe --topic orders --all      # every config and its source
  strom configs describe --broker                  # the first broker's non-default configs
  strom configs describe --broker 1 --all --output json
"""

ALTER_EXAMPLES = """\
  strom configs alter --topic orders -c retention.ms=86400000 -c cleanup.policy=compact
  strom configs alter --topic orders --delete-config retention.ms     # back to the default
  strom configs alter --broker 1 --config log.retention.ms=3600000
"""


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "configs", help="describe or alter topic and broker configs",
        description="Describe or alter topic and broker configs (Kafka property names).")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    net = network_parent()

    describe = add_command(
        actions, "describe", run_describe, parents=[net], examples=DESCRIBE_EXAMPLES,
        help="show the configs of a topic or broker",
        description="Show the configs of a topic or a broker. Without --all, only "
                    "the ones not at their default.")
    _add_entity(describe)
    describe.add_argument("--all", action="store_true",
                          help="also show configs at their default")

    alter = add_command(
        actions, "alter", run_alter, parents=[net], examples=ALTER_EXAMPLES,
        help="set or delete configs of a topic or broker",
        description="Set or delete configs of a topic or a broker, incrementally: "
                    "configs not named keep their values.")
    _add_entity(alter)
    add_alter_args(alter)


def _add_entity(parser: argparse.ArgumentParser) -> None:
    entity = parser.add_mutually_exclusive_group(required=True)
    entity.add_argument("--topic", metavar="NAME", help="a topic")
    entity.add_argument("--broker", metavar="ID", nargs="?", const="",
                        help="a broker, by id (default: the first broker)")


def add_alter_args(parser: argparse.ArgumentParser) -> None:
    """Every command that changes configs spells it -c/--config KEY=VALUE and
    --delete-config KEY (kafka-topics' and kafka-configs' names); --set and
    --delete, the earlier spelling of `configs alter` (and rpk's), stay as
    hidden aliases so scripts keep working."""
    parser.add_argument("-c", "--config", dest="set_configs", action="append", default=[],
                        metavar="KEY=VALUE", help="set a config (repeatable)")
    parser.add_argument("--delete-config", dest="delete_configs", action="append", default=[],
                        metavar="KEY", help="delete a config, back to its default (repeatable)")
    add_hidden_alias(parser, "--set", dest="set_configs", action="append")
    add_hidden_alias(parser, "--delete", dest="delete_configs", action="append")


def _resource(session: Session, args: argparse.Namespace) -> tuple[Any, str]:
    """(ConfigResource type, name), after checking the topic or broker exists."""
    ka = kafka_admin()

    metadata = session.metadata()
    if args.topic is not None:
        session.topic(metadata, args.topic)
        return ka.ResourceType.TOPIC, args.topic
    broker_ids = sorted(metadata.brokers)
    if not args.broker:
        if not broker_ids:
            raise CliError("the cluster lists no brokers")
        return ka.ResourceType.BROKER, str(broker_ids[0])
    try:
        broker_id = int(args.broker)
    except ValueError:
        raise UsageError(f"--broker takes a broker id, got {args.broker!r}") from None
    if broker_id not in metadata.brokers:
        known = ", ".join(str(b) for b in broker_ids)
        raise CliError(f"unknown broker {broker_id} (brokers: {known})")
    return ka.ResourceType.BROKER, str(broker_id)


def describe_configs(session: Session, restype: Any, name: str) -> dict[str, ConfigEntry]:
    ka = kafka_admin()

    resource = ka.ConfigResource(restype, name)
    futures = session.admin().describe_configs([resource], **session.admin_options)
    entries: dict[str, ConfigEntry] = session.wait(
        futures[resource], f"cannot describe configs of {_label(restype, name)}")
    return entries


def alter_configs(session: Session, restype: Any, name: str,
                  set_configs: dict[str, str], delete_configs: list[str]) -> None:
    ka = kafka_admin()

    entries = [ka.ConfigEntry(key, value, incremental_operation=ka.AlterConfigOpType.SET)
               for key, value in set_configs.items()]
    entries += [ka.ConfigEntry(key, None, incremental_operation=ka.AlterConfigOpType.DELETE)
                for key in delete_configs]
    resource = ka.ConfigResource(restype, name, incremental_configs=entries)
    futures = session.admin().incremental_alter_configs([resource], **session.admin_options)
    session.wait(futures[resource], f"cannot alter configs of {_label(restype, name)}")


def parse_alter_args(args: argparse.Namespace) -> tuple[dict[str, str], list[str]]:
    set_configs = parse_key_values(args.set_configs, "a config")
    delete_configs: list[str] = list(dict.fromkeys(args.delete_configs))
    both = set(set_configs) & set(delete_configs)
    if both:
        raise UsageError(f"both set and deleted: {', '.join(sorted(both))}")
    return set_configs, delete_configs


def _label(restype: Any, name: str) -> str:
    return f"{restype.name.lower()} '{name}'"


def source_name(entry: ConfigEntry) -> str:
    """DYNAMIC_TOPIC_CONFIG, DEFAULT_CONFIG, ... (describe_configs gives ints)."""
    try:
        return str(kafka_admin().ConfigSource(int(entry.source)).name)
    except (TypeError, ValueError):
        return str(getattr(entry.source, "name", entry.source))


def entry_json(entry: ConfigEntry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "value": None if entry.is_sensitive else entry.value,
        "source": source_name(entry),
        "default": entry.is_default,
        "read_only": entry.is_read_only,
        "sensitive": entry.is_sensitive,
    }


def is_override(entry: ConfigEntry) -> bool:
    return not entry.is_default and source_name(entry) != "DEFAULT_CONFIG"


def run_describe(args: argparse.Namespace) -> int:
    session = Session(args)
    restype, name = _resource(session, args)
    entries = sorted(describe_configs(session, restype, name).values(), key=lambda e: e.name)
    if not args.all:
        entries = [entry for entry in entries if is_override(entry)]
    if args.output == "json":
        print_json({"resource": restype.name.lower(), "name": name,
                    "configs": [entry_json(entry) for entry in entries]})
        return 0
    if not entries:
        print(f"No configs of {_label(restype, name)} differ from their defaults "
              "(--all shows them all).")
        return 0
    rows = [(entry.name, "(sensitive)" if entry.is_sensitive else entry.value,
             source_name(entry), entry.is_read_only) for entry in entries]
    render_table(["NAME", "VALUE", "SOURCE", "READ-ONLY"], rows)
    return 0


def run_alter(args: argparse.Namespace) -> int:
    set_configs, delete_configs = parse_alter_args(args)
    if not set_configs and not delete_configs:
        raise UsageError("nothing to alter: give --config KEY=VALUE or --delete-config KEY")
    session = Session(args)
    restype, name = _resource(session, args)
    alter_configs(session, restype, name, set_configs, delete_configs)
    if args.output == "json":
        print_json({"resource": restype.name.lower(), "name": name,
                    "set": set_configs, "deleted": delete_configs})
    else:
        changes = [f"{k}={v}" for k, v in set_configs.items()]
        changes += [f"-{k}" for k in delete_configs]
        print(f"Altered configs of {_label(restype, name)}: {' '.join(changes)}")
    return 0
