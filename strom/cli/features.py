"""`strom cluster features describe|upgrade`: a cluster's finalized feature
levels (metadata.version, transaction.version), as kafka-features.sh shows and
raises them.

describe asks one bootstrap broker for ApiVersions (its supported ranges and
the finalized levels); upgrade sends UpdateFeatures to it, which a broker
forwards to the controller. Both are raw requests (cli/raw_request.py:
librdkafka offers neither; plaintext only). Works against Kafka too.
"""

from __future__ import annotations

import argparse
from typing import Any

from strom.cli import raw_request
from strom.cli.common import CliError, Session, UsageError, add_command
from strom.cli.output import print_json, render_table
from strom.cluster import metadata_version
from strom.protocol.api import ApiKey

EXAMPLES = """\
  strom cluster features describe
  strom cluster features upgrade --metadata 3.5          # metadata.version 11 (3.5-IV2)
  strom cluster features upgrade --feature metadata.version=11 --dry-run
"""
#: kafka-features.sh --metadata takes a release: its newest level.
_KAFKA_RELEASES = {"3.3": 7, "3.4": 8, "3.5": 11}
_RELEASE_LEVELS = {metadata_version.release(level): level
                   for level in range(metadata_version.MINIMUM, metadata_version.LATEST + 1)}


def register(actions: Any, net: argparse.ArgumentParser) -> None:
    parser = actions.add_parser(
        "features", help="describe or upgrade finalized feature levels (metadata.version)",
        description="The features the brokers support and the levels the cluster "
                    "finalized, as kafka-features.sh shows and raises them.")
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    add_command(steps, "describe", run_describe, parents=[net], examples=EXAMPLES,
                help="supported ranges and finalized levels",
                description="Each feature's supported range (of the broker asked) and the "
                            "cluster's finalized level.")
    upgrade = add_command(
        steps, "upgrade", run_upgrade, parents=[net], examples=EXAMPLES,
        help="raise finalized feature levels",
        description="Raise metadata.version once every broker runs a strom that supports "
                    "the level (docs/cluster.md, Upgrading). The controller refuses "
                    "(INVALID_UPDATE_VERSION) while a registered broker does not.")
    upgrade.add_argument("--metadata", metavar="RELEASE",
                         help="metadata.version by Kafka release, e.g. 3.5 or 3.5-IV2")
    upgrade.add_argument("--feature", action="append", default=[], metavar="NAME=LEVEL",
                         help="a feature level (repeatable)")
    upgrade.add_argument("--dry-run", action="store_true",
                         help="validate only: the controller checks and writes nothing")


def _address(session: Session) -> tuple[str, int]:
    first = session.bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--bootstrap-server: not HOST:PORT: {first!r}")
    return host, int(port)


def _level_name(feature: str, level: int) -> str:
    if feature == metadata_version.FEATURE_NAME:
        return metadata_version.release(level)
    return str(level)


def run_describe(args: argparse.Namespace) -> int:
    session = Session(args)
    response = raw_request.request(_address(session), ApiKey.API_VERSIONS, 3, {
        "client_software_name": "strom-cli", "client_software_version": "1"},
        session.timeout, session.config)
    if response.error_code:
        raise CliError(f"ApiVersions: {raw_request.error_name(response.error_code)}")
    finalized = {f.name: int(f.max_version_level) for f in response.finalized_features}
    rows = [{"feature": f.name, "supported_min": int(f.min_version),
             "supported_max": int(f.max_version), "finalized": finalized.get(f.name),
             "epoch": int(response.finalized_features_epoch)}
            for f in sorted(response.supported_features, key=lambda f: f.name)]
    if args.output == "json":
        print_json(rows)
        return 0
    render_table(["FEATURE", "SUPPORTED MIN", "SUPPORTED MAX", "FINALIZED", "EPOCH"],
                 [(r["feature"], _level_name(r["feature"], r["supported_min"]),
                   _level_name(r["feature"], r["supported_max"]),
                   "-" if r["finalized"] is None else _level_name(r["feature"], r["finalized"]),
                   r["epoch"]) for r in rows])
    return 0


def _updates(args: argparse.Namespace) -> list[tuple[str, int]]:
    updates: list[tuple[str, int]] = []
    if args.metadata:
        release = args.metadata
        level = _RELEASE_LEVELS.get(release, _KAFKA_RELEASES.get(release))
        if level is None:
            raise UsageError(f"--metadata: unknown release {release!r} (this strom knows "
                             f"{', '.join(_KAFKA_RELEASES)})")
        updates.append((metadata_version.FEATURE_NAME, level))
    for item in args.feature:
        name, _, value = item.partition("=")
        if not name or not value.isdigit():
            raise UsageError(f"--feature: not NAME=LEVEL: {item!r}")
        updates.append((name, int(value)))
    if not updates:
        raise UsageError("name a level: --metadata RELEASE or --feature NAME=LEVEL")
    return updates


def run_upgrade(args: argparse.Namespace) -> int:
    updates = _updates(args)
    session = Session(args)
    response = raw_request.request(_address(session), ApiKey.UPDATE_FEATURES, 1, {
        "timeout": int(session.timeout * 1000), "validate_only": args.dry_run,
        "feature_updates": [{"feature": name, "max_version_level": level, "upgrade_type": 1}
                            for name, level in updates]}, session.timeout,
        session.config)
    if response.error_code:
        raise CliError(f"UpdateFeatures: {raw_request.error_name(response.error_code)}"
                       + (f" ({response.error_message})" if response.error_message else ""))
    failed = [r for r in response.results if r.error_code]
    for name, level in updates:
        result = next((r for r in response.results if r.feature == name), None)
        if result is not None and result.error_code:
            print(f"{name} could not be {'checked' if args.dry_run else 'upgraded'} to "
                  f"{_level_name(name, level)}: {result.error_message}")
        else:
            print(f"{name} {'can be' if args.dry_run else 'was'} upgraded to "
                  f"{_level_name(name, level)}.")
    return 1 if failed else 0
