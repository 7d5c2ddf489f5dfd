"""`strom cluster status|under-replicated|elect-leaders|reassign|features`: a cluster's
brokers and replication at a glance, preferred/unclean leader elections
(like kafka-leader-election) and partition reassignment (like
kafka-reassign-partitions: generate a plan, execute it with an optional
throttle, verify it and clear the throttle).

Everything goes through the Kafka protocol, so it works against Kafka too:
Metadata, DescribeCluster, ElectLeaders and IncrementalAlterConfigs through
librdkafka; AlterPartitionReassignments and ListPartitionReassignments,
which librdkafka does not offer, as raw requests (cli/raw_request.py) to
the controller DescribeCluster names (plaintext only: -X security settings
do not reach them).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from strom.cli import features, raw_request, reassign_plan
from strom.cli.common import (
    CliError,
    ClusterMetadata,
    Session,
    UsageError,
    add_command,
    describe_error,
    kafka_admin,
    network_parent,
    parse_topic_partitions,
)
from strom.cli.output import Style, print_json, render_table
from strom.protocol.api import ApiKey

STATUS_EXAMPLES = """\
  strom cluster status                   # brokers, controller, replication health
  strom cluster status --output json
"""
UNDER_EXAMPLES = """\
  strom cluster under-replicated         # partitions whose ISR lacks replicas, or offline
  strom cluster under-replicated --topic orders
"""
ELECT_EXAMPLES = """\
  strom cluster elect-leaders --all-topic-partitions          # preferred leaders back
  strom cluster elect-leaders --topic orders:0,1
  strom cluster elect-leaders --topic orders --election-type unclean
"""
REASSIGN_EXAMPLES = """\
  strom cluster reassign generate --topic orders --brokers 1,2,4 > plan.json
  strom cluster reassign generate --all-topics --brokers 1,2 > decommission-3.json
  strom cluster reassign execute plan.json --throttle 50000000   # 50 MB/s while moving
  strom cluster reassign verify plan.json --wait     # until done; then clears the throttle
  strom cluster reassign cancel plan.json
"""

RATES = ("leader.replication.throttled.rate", "follower.replication.throttled.rate")
REPLICA_LISTS = ("leader.replication.throttled.replicas",
                 "follower.replication.throttled.replicas")
#: How often `verify --wait` asks again.
_VERIFY_POLL_S = 1.0


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "cluster", help="brokers, replication health, leader elections, reassignment",
        description="Inspect a cluster's brokers and replication, elect leaders and move "
                    "partitions between brokers.")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    net = network_parent()

    add_command(actions, "status", run_status, parents=[net], examples=STATUS_EXAMPLES,
                help="brokers, controller and partitions needing attention",
                description="The registered brokers (the controller marked), the replicas "
                            "and leaders each holds, and how many partitions are "
                            "under-replicated, offline or being reassigned.")
    under = add_command(
        actions, "under-replicated", run_under_replicated, parents=[net],
        examples=UNDER_EXAMPLES, help="partitions whose ISR is missing replicas",
        description="Partitions whose ISR is smaller than their replica list, and offline "
                    "partitions (no leader).")
    under.add_argument("--topic", action="append", default=[], metavar="TOPIC",
                       help="only these topics (repeatable)")

    elect = add_command(
        actions, "elect-leaders", run_elect, parents=[net], examples=ELECT_EXAMPLES,
        help="preferred or unclean leader election",
        description="Ask the controller to make each partition's preferred replica (its "
                    "first) the leader, or, unclean, to elect a leader for leaderless "
                    "partitions from outside the ISR (records may be lost).")
    scope = elect.add_mutually_exclusive_group(required=True)
    scope.add_argument("--topic", action="append", metavar="TOPIC[:P,P]",
                       help="a topic, or some of its partitions (repeatable)")
    scope.add_argument("--all-topic-partitions", action="store_true",
                       help="every partition")
    elect.add_argument("--election-type", choices=["preferred", "unclean"],
                       default="preferred")

    reassign = parser_for(actions)
    generate = add_command(
        reassign, "generate", run_generate, parents=[net], examples=REASSIGN_EXAMPLES,
        help="a plan moving topics onto some brokers",
        description="Print a reassignment plan (Kafka's JSON) that moves the topics' "
                    "partitions onto the given brokers, moving as few replicas as it can "
                    "and spreading them evenly.")
    which = generate.add_mutually_exclusive_group(required=True)
    which.add_argument("--topic", action="append", metavar="TOPIC",
                       help="a topic to move (repeatable)")
    which.add_argument("--all-topics", action="store_true",
                       help="every topic, internal ones included (decommissioning)")
    generate.add_argument("--brokers", required=True, metavar="ID,ID,...",
                          help="the brokers to move onto")
    execute = add_command(
        reassign, "execute", run_execute, parents=[net], examples=REASSIGN_EXAMPLES,
        help="start the moves a plan asks for",
        description="Start the reassignment a plan file asks for. Prints the current "
                    "assignment first: save it to roll back.")
    execute.add_argument("plan", type=Path, metavar="PLAN.json")
    execute.add_argument("--throttle", type=int, metavar="BYTES/S",
                         help="bound the replication traffic of the moves (cleared by verify)")
    verify = add_command(
        reassign, "verify", run_verify, parents=[net], examples=REASSIGN_EXAMPLES,
        help="whether a plan's moves are done",
        description="Report each partition of a plan as completed, in progress or "
                    "different; once all are completed, clear the throttles. Exit code 0 "
                    "when every move is completed, 1 otherwise.")
    verify.add_argument("plan", type=Path, metavar="PLAN.json")
    verify.add_argument("--wait", action="store_true",
                        help="wait (up to --wait-timeout) until every move completed")
    verify.add_argument("--wait-timeout", type=float, default=600.0, metavar="SECONDS")
    verify.add_argument("--keep-throttle", action="store_true",
                        help="leave the throttles in place")
    cancel = add_command(
        reassign, "cancel", run_cancel, parents=[net], examples=REASSIGN_EXAMPLES,
        help="cancel a plan's moves in progress",
        description="Cancel the moves of a plan still in progress: the replicas being "
                    "added are dropped, the original ones stay.")
    cancel.add_argument("plan", type=Path, metavar="PLAN.json")
    features.register(actions, net)


def parser_for(actions: Any) -> Any:
    parser = actions.add_parser(
        "reassign", help="generate, execute, verify or cancel partition reassignments",
        description="Move partitions' replicas between brokers (KIP-455), as "
                    "kafka-reassign-partitions does.")
    return parser.add_subparsers(dest="step", required=True, metavar="STEP")


# --- reading the cluster ------------------------------------------------------------


def _assignment(metadata: ClusterMetadata, topics: list[str] | None = None
                ) -> dict[tuple[str, int], list[int]]:
    found: dict[tuple[str, int], list[int]] = {}
    for topic in metadata.topics.values():
        if topics is not None and topic.topic not in topics:
            continue
        for p in topic.partitions.values():
            found[(topic.topic, p.id)] = list(p.replicas)
    return found


def _describe_cluster(session: Session) -> Any:
    return session.wait(session.admin().describe_cluster(**session.admin_options),
                        "cannot describe the cluster")


def _controller(session: Session) -> tuple[str, int]:
    described = _describe_cluster(session)
    node = described.controller or (described.nodes[0] if described.nodes else None)
    if node is None:
        raise CliError("the cluster names no broker to ask")
    return node.host, int(node.port)


def _ongoing(session: Session, address: tuple[str, int]) -> dict[tuple[str, int], Any]:
    response = raw_request.request(address, ApiKey.LIST_PARTITION_REASSIGNMENTS, 0,
                                   {"topics": None}, session.timeout, session.config)
    _check(response.error_code, response.error_message, "cannot list reassignments")
    return {(t.name, int(p.partition_index)): p for t in response.topics for p in t.partitions}


def _check(code: int, message: str | None, what: str) -> None:
    if code:
        raise CliError(f"{what}: {raw_request.error_name(code)}"
                       + (f" ({message})" if message else ""))


# --- status and under-replicated ---------------------------------------------------------


def run_status(args: argparse.Namespace) -> int:
    session = Session(args)
    metadata = session.metadata()
    described = _describe_cluster(session)
    controller = described.controller.id if described.controller is not None else -1
    leaders: Counter[int] = Counter()
    replicas: Counter[int] = Counter()
    under = offline = partitions = 0
    for topic in metadata.topics.values():
        for p in topic.partitions.values():
            partitions += 1
            replicas.update(p.replicas)
            if p.leader >= 0:
                leaders[p.leader] += 1
            else:
                offline += 1
            if len(p.isrs) < len(p.replicas):
                under += 1
    try:
        moving = len(_ongoing(session, _controller(session)))
    except CliError:
        moving = -1  # a cluster that does not answer ListPartitionReassignments
    brokers = sorted(described.nodes, key=lambda n: n.id)
    document = {
        "cluster_id": described.cluster_id, "controller": controller,
        "brokers": [{"id": n.id, "host": n.host, "port": n.port, "rack": n.rack,
                     "replicas": replicas[n.id], "leaders": leaders[n.id]} for n in brokers],
        "topics": len(metadata.topics), "partitions": partitions,
        "under_replicated": under, "offline": offline, "reassigning": moving,
    }
    if args.output == "json":
        print_json(document)
        return 0
    style = Style(sys.stdout)
    print(f"Cluster {described.cluster_id}: {len(brokers)} broker(s), controller {controller}")
    render_table(["BROKER", "HOST", "RACK", "REPLICAS", "LEADERS", ""],
                 [(n.id, f"{n.host}:{n.port}", n.rack or "-", replicas[n.id], leaders[n.id],
                   "controller" if n.id == controller else "") for n in brokers],
                 numeric=(0, 3, 4))
    missing = sorted(set(replicas) - {n.id for n in brokers})
    health = (f"{len(metadata.topics)} topic(s), {partitions} partition(s): "
              f"{under} under-replicated, {offline} offline, "
              f"{'?' if moving < 0 else moving} being reassigned")
    print(style(health, "bold", "red" if under or offline else "green"))
    if missing:
        print(f"Replicas on brokers that are not registered: {missing}")
    return 0


def run_under_replicated(args: argparse.Namespace) -> int:
    session = Session(args)
    metadata = session.metadata()
    rows = []
    for topic in sorted(metadata.topics.values(), key=lambda t: t.topic):
        if args.topic and topic.topic not in args.topic:
            continue
        for pid in sorted(topic.partitions):
            p = topic.partitions[pid]
            if p.leader < 0 or len(p.isrs) < len(p.replicas):
                rows.append({"topic": topic.topic, "partition": pid, "leader": p.leader,
                             "replicas": list(p.replicas), "isr": sorted(p.isrs),
                             "missing": sorted(set(p.replicas) - set(p.isrs)),
                             "offline": p.leader < 0})
    if args.output == "json":
        print_json(rows)
        return 0
    if not rows:
        print("No under-replicated partitions.")
        return 0
    render_table(["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR", "MISSING", ""],
                 [(r["topic"], r["partition"], r["leader"], r["replicas"], r["isr"],
                   r["missing"], "offline" if r["offline"] else "") for r in rows],
                 numeric=(1, 2))
    return 0


# --- leader elections ------------------------------------------------------------------


def run_elect(args: argparse.Namespace) -> int:
    from confluent_kafka import ElectionType, TopicPartition

    session = Session(args)
    metadata = session.metadata()
    partitions = None
    if args.topic:
        partitions = []
        for spec in args.topic:
            name, numbers = parse_topic_partitions(spec)
            topic = session.topic(metadata, name)
            for pid in numbers if numbers is not None else sorted(topic.partitions):
                partitions.append(TopicPartition(name, pid))
    election = ElectionType.UNCLEAN if args.election_type == "unclean" \
        else ElectionType.PREFERRED
    # No request_timeout: confluent-kafka 2.16's binding fails on any keyword
    # argument here (SystemError); --timeout still bounds the wait.
    results = session.wait(session.admin().elect_leaders(election, partitions),
                           "cannot elect leaders")
    rows = []
    failed = False
    for tp, error in sorted(results.items(), key=lambda i: (i[0].topic, i[0].partition)):
        outcome = "elected" if error is None else describe_error(error)
        if error is not None and error.name() != "ELECTION_NOT_NEEDED":
            failed = True
        rows.append({"topic": tp.topic, "partition": tp.partition, "result": outcome})
    if args.output == "json":
        print_json(rows)
    elif not rows:
        print("No partition needed an election.")
    else:
        render_table(["TOPIC", "PARTITION", "RESULT"],
                     [(r["topic"], r["partition"], r["result"]) for r in rows], numeric=(1,))
    return 1 if failed else 0


# --- reassignment -------------------------------------------------------------------------


def _read_plan(path: Path) -> dict[tuple[str, int], list[int]]:
    try:
        return reassign_plan.from_json(path.read_text())
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except reassign_plan.PlanError as exc:
        raise UsageError(f"{path}: {exc}") from None


def _brokers(spec: str) -> list[int]:
    try:
        brokers = [int(b) for b in spec.split(",") if b.strip()]
    except ValueError:
        raise UsageError(f"bad broker list {spec!r}: use ID,ID,...") from None
    if not brokers:
        raise UsageError("--brokers names no broker")
    return brokers


def run_generate(args: argparse.Namespace) -> int:
    session = Session(args)
    metadata = session.metadata()
    brokers = _brokers(args.brokers)
    registered = {n.id for n in _describe_cluster(session).nodes}
    unknown = sorted(set(brokers) - registered)
    if unknown:
        raise CliError(f"broker(s) {unknown} are not registered")
    if args.all_topics:
        topics = None
    else:
        topics = [session.topic(metadata, name).topic for name in dict.fromkeys(args.topic)]
    current = _assignment(metadata, topics)
    try:
        plan = reassign_plan.generate(current, brokers)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    changed = {k: r for k, r in plan.items() if r != current[k]}
    if args.output == "json":
        print_json(reassign_plan.to_json(changed))
        return 0
    print(f"# {len(changed)} of {len(plan)} partition(s) change, "
          f"{reassign_plan.moved(current, changed)} replica(s) move.", file=sys.stderr)
    print("# Current assignment (keep it to roll back):", file=sys.stderr)
    print("# " + _compact(reassign_plan.to_json({k: current[k] for k in changed})),
          file=sys.stderr)
    print(_compact(reassign_plan.to_json(changed)))
    return 0


def _compact(document: object) -> str:
    import json

    return json.dumps(document, separators=(",", ":"))


def run_execute(args: argparse.Namespace) -> int:
    plan = _read_plan(args.plan)
    session = Session(args)
    metadata = session.metadata()
    current = _assignment(metadata)
    unknown = [f"{t}-{p}" for t, p in plan if (t, p) not in current]
    if unknown:
        raise CliError(f"unknown partition(s): {', '.join(unknown)}")
    address = _controller(session)
    print("Current partition replica assignment (save it to roll back):")
    print(_compact(reassign_plan.to_json({k: current[k] for k in plan})))
    if args.throttle is not None:
        if args.throttle < 0:
            raise UsageError("--throttle must be at least 0")
        _set_throttles(session, plan, current, args.throttle)
        print(f"Replication throttled to {args.throttle} B/s on the brokers involved.")
    topics: dict[str, list[dict[str, Any]]] = {}
    for (topic, partition), replicas in sorted(plan.items()):
        topics.setdefault(topic, []).append({"partition_index": partition,
                                             "replicas": replicas})
    response = raw_request.request(
        address, ApiKey.ALTER_PARTITION_REASSIGNMENTS, 0,
        {"timeout": int(session.timeout * 1000),
         "topics": [{"name": t, "partitions": ps} for t, ps in topics.items()]},
        session.timeout, session.config)
    _check(response.error_code, response.error_message, "cannot start the reassignment")
    failed = [f"{t.name}-{p.partition_index}: {raw_request.error_name(p.error_code)}"
              + (f" ({p.error_message})" if p.error_message else "")
              for t in response.responses for p in t.partitions if p.error_code]
    for line in failed:
        print(f"failed: {line}", file=sys.stderr)
    print(f"Started the reassignment of {len(plan) - len(failed)} partition(s).")
    return 1 if failed else 0


def _set_throttles(session: Session, plan: dict[tuple[str, int], list[int]],
                   current: dict[tuple[str, int], list[int]], rate: int) -> None:
    """Kafka's tool's throttles: the rates on every broker a move touches; the
    leader list names the current replicas of each moving partition, the
    follower list the replicas being added."""
    ka = kafka_admin()
    leader: dict[str, list[str]] = {}
    follower: dict[str, list[str]] = {}
    brokers: set[int] = set()
    for (topic, partition), replicas in plan.items():
        before = current[(topic, partition)]
        brokers.update(before, replicas)
        leader.setdefault(topic, []).extend(f"{partition}:{b}" for b in before)
        follower.setdefault(topic, []).extend(
            f"{partition}:{b}" for b in replicas if b not in before)
    resources = [ka.ConfigResource(ka.ResourceType.BROKER, str(b), incremental_configs=[
        ka.ConfigEntry(name, str(rate), incremental_operation=ka.AlterConfigOpType.SET)
        for name in RATES]) for b in sorted(brokers)]
    for topic in sorted(leader):
        entries = [ka.ConfigEntry(REPLICA_LISTS[0], ",".join(leader[topic]),
                                  incremental_operation=ka.AlterConfigOpType.SET)]
        if follower[topic]:
            entries.append(ka.ConfigEntry(REPLICA_LISTS[1], ",".join(follower[topic]),
                                          incremental_operation=ka.AlterConfigOpType.SET))
        resources.append(ka.ConfigResource(ka.ResourceType.TOPIC, topic,
                                           incremental_configs=entries))
    _alter_each(session, resources, "cannot set the throttle")


def _alter_each(session: Session, resources: list[Any], what: str) -> None:
    # One request per resource: a BROKER resource must go to that broker.
    for resource in resources:
        futures = session.admin().incremental_alter_configs([resource],
                                                            **session.admin_options)
        session.wait(futures[resource], f"{what} ({resource.name})")


def _clear_throttles(session: Session, topics: set[str]) -> None:
    ka = kafka_admin()
    brokers = [n.id for n in _describe_cluster(session).nodes]
    resources = [ka.ConfigResource(ka.ResourceType.BROKER, str(b), incremental_configs=[
        ka.ConfigEntry(name, None, incremental_operation=ka.AlterConfigOpType.DELETE)
        for name in RATES]) for b in sorted(brokers)]
    resources += [ka.ConfigResource(ka.ResourceType.TOPIC, topic, incremental_configs=[
        ka.ConfigEntry(name, None, incremental_operation=ka.AlterConfigOpType.DELETE)
        for name in REPLICA_LISTS]) for topic in sorted(topics)]
    _alter_each(session, resources, "cannot clear the throttle")


def run_verify(args: argparse.Namespace) -> int:
    plan = _read_plan(args.plan)
    session = Session(args)
    session.metadata()
    deadline = time.monotonic() + args.wait_timeout
    while True:
        states = _states(session, plan)
        done = all(state == "completed" for state, _ in states.values())
        if done or not args.wait or time.monotonic() >= deadline:
            break
        time.sleep(_VERIFY_POLL_S)  # polling the controller: no event to wait on
    rows = [{"topic": t, "partition": p, "state": state, "replicas": replicas}
            for (t, p), (state, replicas) in sorted(states.items())]
    if done and not args.keep_throttle:
        _clear_throttles(session, {t for t, _ in plan})
    if args.output == "json":
        print_json({"completed": done, "partitions": rows})
    else:
        render_table(["TOPIC", "PARTITION", "STATE", "REPLICAS"],
                     [(r["topic"], r["partition"], r["state"], r["replicas"]) for r in rows],
                     numeric=(1,))
        if done:
            print("Every reassignment is completed"
                  + ("." if args.keep_throttle else "; throttles cleared."))
    return 0 if done else 1


def _states(session: Session, plan: dict[tuple[str, int], list[int]]
            ) -> dict[tuple[str, int], tuple[str, list[int]]]:
    ongoing = _ongoing(session, _controller(session))
    current = _assignment(session.metadata())
    states: dict[tuple[str, int], tuple[str, list[int]]] = {}
    for key, target in plan.items():
        replicas = current.get(key)
        if key in ongoing:
            states[key] = ("in progress", [int(r) for r in ongoing[key].replicas])
        elif replicas == target:
            states[key] = ("completed", replicas)
        else:
            states[key] = ("different" if replicas is not None else "unknown",
                           replicas or [])
    return states


def run_cancel(args: argparse.Namespace) -> int:
    plan = _read_plan(args.plan)
    session = Session(args)
    session.metadata()
    address = _controller(session)
    ongoing = _ongoing(session, address)
    moving = sorted(key for key in plan if key in ongoing)
    if not moving:
        print("None of the plan's partitions is being reassigned.")
        return 0
    topics: dict[str, list[dict[str, Any]]] = {}
    for topic, partition in moving:
        topics.setdefault(topic, []).append({"partition_index": partition, "replicas": None})
    response = raw_request.request(
        address, ApiKey.ALTER_PARTITION_REASSIGNMENTS, 0,
        {"timeout": int(session.timeout * 1000),
         "topics": [{"name": t, "partitions": ps} for t, ps in topics.items()]},
        session.timeout, session.config)
    _check(response.error_code, response.error_message, "cannot cancel")
    failed = [p for t in response.responses for p in t.partitions if p.error_code]
    print(f"Cancelled the reassignment of {len(moving) - len(failed)} partition(s).")
    return 1 if failed else 0
