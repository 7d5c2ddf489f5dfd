"""Where a strom cluster keeps its state in etcd: one key prefix per cluster.

    /strom/<cluster>/brokers/<node id>            a broker's registration, under its lease
    /strom/<cluster>/controller/<lease id, hex>   a controller candidate, under its lease
    /strom/<cluster>/metadata/log/<seq, 20 digits> one committed batch of metadata records

Everything a broker needs is under the one prefix, so one watch of it yields
every change in etcd's revision order: registrations, the election and the
metadata log interleave exactly as they happened, and a broker that applies
them in that order never sees a commit of a controller before the election
that made it controller.

The controller election is etcd's own recipe (`concurrency.Election` in etcd's
Go client): each candidate puts a key named after its lease under
`controller/`; the key with the lowest create revision wins, and the winner
stays controller while that key exists (a later candidate always gets a higher
create revision, so once the keys before it are gone, they never come back).

Metadata batches are numbered 1, 2, 3, ... without gaps; the controller
commits batch n only if `log/<n>` does not exist yet (create revision 0) and
its own candidate key still exists with the create revision it won with.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

DEFAULT_ROOT = "/strom"


class KeyKind(Enum):
    BROKER = "brokers"
    CANDIDATE = "controller"
    METADATA_LOG = "metadata/log"


@dataclass(frozen=True, slots=True)
class ParsedKey:
    kind: KeyKind
    # The node id of a broker, the lease id of a candidate, the batch number of the log.
    id: int


@dataclass(frozen=True, slots=True)
class ClusterKeys:
    cluster: str
    root: str = DEFAULT_ROOT

    def __post_init__(self) -> None:
        if not self.cluster or "/" in self.cluster:
            raise ValueError(f"cluster name {self.cluster!r} must be non-empty without '/'")

    @property
    def prefix(self) -> str:
        """Every key of the cluster starts with it (the one watch's range)."""
        return f"{self.root.rstrip('/')}/{self.cluster}/"

    def broker(self, node_id: int) -> str:
        return f"{self.prefix}{KeyKind.BROKER.value}/{node_id}"

    def candidate(self, lease_id: int) -> str:
        return f"{self.prefix}{KeyKind.CANDIDATE.value}/{lease_id:016x}"

    def metadata_log(self, seq: int) -> str:
        # Zero-padded so that etcd's key order is the batches' order.
        return f"{self.prefix}{KeyKind.METADATA_LOG.value}/{seq:020d}"

    def parse(self, key: str) -> ParsedKey | None:
        """What a key of this cluster is; None for keys strom does not know
        (a newer strom's, or an operator's), which are ignored."""
        if not key.startswith(self.prefix):
            return None
        rest = key[len(self.prefix):]
        for kind in KeyKind:
            head = kind.value + "/"
            if rest.startswith(head):
                tail = rest[len(head):]
                try:
                    number = int(tail, 16) if kind is KeyKind.CANDIDATE else int(tail)
                except ValueError:
                    return None
                return ParsedKey(kind, number)
        return None
