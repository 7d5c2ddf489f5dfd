"""Where new partitions' replicas go: Kafka's striped placement, rack-aware.

The registered brokers that are not shutting down (fenced) are laid out in
one rack-alternating list: racks in name order, each rack's brokers in id
order, taken one per rack in turn (r0b0, r1b0, r2b0, r0b1, ...), so that
neighbours sit in different racks. Partition p's leader is the broker at
position start + p (a random start, as Kafka's StripedReplicaPlacer), which
spreads leaders evenly over the brokers; each further replica is the next
broker along the list whose rack holds no replica of the partition yet, and
once every rack holds one, simply the next broker not chosen yet: racks are
spread first, then brokers. Brokers without `broker.rack` count as one rack
of their own. The first replica is the preferred leader.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from strom.cluster.image import BrokerInfo
from strom.errors import InvalidReplicationFactorError


def rack_alternating(brokers: Iterable[BrokerInfo]) -> list[BrokerInfo]:
    """The brokers one rack at a time in turn (racks by name, brokers by id)."""
    by_rack: dict[str, list[BrokerInfo]] = {}
    for broker in sorted(brokers, key=lambda b: b.node_id):
        by_rack.setdefault(broker.rack or "", []).append(broker)
    racks = [by_rack[r] for r in sorted(by_rack)]
    laid: list[BrokerInfo] = []
    for i in range(max((len(r) for r in racks), default=0)):
        laid += [rack[i] for rack in racks if i < len(rack)]
    return laid


def place(brokers: Iterable[BrokerInfo], partitions: int, replication_factor: int,
          rng: random.Random | None = None) -> list[tuple[int, ...]]:
    """Replicas (leader first) for `partitions` new partitions.
    InvalidReplicationFactorError when fewer usable brokers than replicas."""
    usable = rack_alternating(b for b in brokers if not b.fenced)
    if replication_factor <= 0:
        raise InvalidReplicationFactorError("Replication factor must be larger than 0.")
    if replication_factor > len(usable):
        raise InvalidReplicationFactorError(
            f"Unable to replicate the partition {replication_factor} time(s): The target "
            f"replication factor of {replication_factor} cannot be reached because only "
            f"{len(usable)} broker(s) are registered.")
    count = len(usable)
    start = (rng or random).randrange(count)
    racks = len({b.rack or "" for b in usable})
    placed: list[tuple[int, ...]] = []
    for p in range(partitions):
        first = (start + p) % count
        chosen = [usable[first]]
        used_racks = {usable[first].rack or ""}
        for _ in range(replication_factor - 1):
            chosen.append(_next(usable, first, chosen, used_racks, racks))
            used_racks.add(chosen[-1].rack or "")
        placed.append(tuple(b.node_id for b in chosen))
    return placed


def _next(usable: Sequence[BrokerInfo], first: int, chosen: list[BrokerInfo],
          used_racks: set[str], racks: int) -> BrokerInfo:
    """The next broker after `first` along the list: in a rack not used yet
    while there is one, else any broker not chosen yet."""
    want_new_rack = len(used_racks) < racks
    fallback: BrokerInfo | None = None
    for step in range(1, len(usable)):
        broker = usable[(first + step) % len(usable)]
        if broker in chosen:
            continue
        if not want_new_rack or (broker.rack or "") not in used_racks:
            return broker
        if fallback is None:
            fallback = broker
    assert fallback is not None  # fewer brokers than replicas was refused before
    return fallback
