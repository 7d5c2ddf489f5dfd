"""What authorization in the handlers costs per request, in process (no
sockets): the DESCRIBE filter of an all-topics Metadata and the KIP-430
operations of every topic, through the helpers the handlers use
(strom/broker/authorization.py) and StandardAuthorizer over `--acls` ACLs.

    .venv/bin/python -m bench.authz_decisions --topics 1000 --acls 1000

Without an authorizer the helpers return at once (nothing is asked)."""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from typing import Any

from strom.broker.authorization import authorized_names, authorized_operations
from strom.broker.context import RequestContext
from strom.cluster.image import AclRecord, MetadataImage
from strom.protocol.headers import RequestHeader
from strom.security.acl_types import AclOperation, AclPermissionType, PatternType, ResourceType
from strom.security.standard_authorizer import StandardAuthorizer


class _Broker:
    """What RequestContext.authorize reads of the broker's services."""

    def __init__(self, authorizer: StandardAuthorizer) -> None:
        self.authorizer = authorizer


def _context(acls: int) -> RequestContext:
    records = frozenset(
        AclRecord(int(ResourceType.TOPIC), f"t{i}", int(PatternType.LITERAL), "User:ANONYMOUS",
                  "*", int(AclOperation.WRITE), int(AclPermissionType.ALLOW))
        for i in range(acls))
    authorizer = StandardAuthorizer(super_users=frozenset({"User:admin"}))
    authorizer.load(dataclasses.replace(
        MetadataImage(cluster_id="bench", controller_id=1, brokers={}), acls=records))
    header = RequestHeader(api_key=3, api_version=12, correlation_id=1, client_id="bench")
    broker: Any = _Broker(authorizer)
    return RequestContext(header, broker, client_host="/127.0.0.1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int, default=1000)
    parser.add_argument("--acls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    ctx = _context(args.acls)
    names = [f"t{i}" for i in range(args.topics)]
    filters, operations = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        authorized_names(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, names)
        filters.append(time.perf_counter() - start)
        start = time.perf_counter()
        for name in names:
            authorized_operations(ctx, ResourceType.TOPIC, name)
        operations.append(time.perf_counter() - start)
    per = 1e6 / args.topics
    print(f"{args.topics} topics, {args.acls} ACLs, median of {args.rounds}:")
    print(f"  DESCRIBE filter:    {statistics.median(filters) * 1e3:8.2f} ms "
          f"({statistics.median(filters) * per:.2f} us/topic)")
    print(f"  KIP-430 operations: {statistics.median(operations) * 1e3:8.2f} ms "
          f"({statistics.median(operations) * per:.2f} us/topic, 8 decisions each)")


if __name__ == "__main__":
    main()
