"""MetadataStore: what the broker, its handlers and its coordinators need of
the store behind the metadata image.

A store is the controller of the cluster as this broker sees it: its
operations (cluster/operations.py, held by the store) validate a request
against the current image and return metadata records without changing
anything; `commit` makes the records durable (and, in a
cluster, agreed) and applies them to the image; listeners hear of every new
image, in order. The single-node store is `cluster/local.py`; the cluster
mode's store keeps the same records in etcd. Only the composition root
(`broker/server.py`) names a concrete store, so everything else works
unchanged on either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from strom.cluster.image import MetadataImage, MetadataRecord
from strom.cluster.operations import MetadataOperations

ImageListener = Callable[[MetadataImage, MetadataImage], None]


class MetadataStore(Protocol):
    @property
    def image(self) -> MetadataImage:
        """The newest committed image."""

    @property
    def node_id(self) -> int:
        """This broker's node id."""

    def subscribe(self, listener: ImageListener) -> None:
        """Call `listener(old, new)` after every change of the image."""

    async def commit(self, records: Sequence[MetadataRecord]) -> MetadataImage:
        """Persist the records and apply them; the new image. Raises KafkaErrors.

        The single-node store does it without yielding to the event loop
        (listeners run inside the call: `ReplicaManager.creating_in_background`
        relies on it); the etcd store returns once its watch applied them."""

    async def submit(self, operation: Callable[[], Sequence[MetadataRecord]]
                     ) -> MetadataImage:
        """Run `operation` against the newest image (it validates and returns
        records, changing nothing) and commit what it returns, in turn with
        the other operations: in a cluster, an operation whose image became
        stale before its batch was written runs again on the newer one."""

    @property
    def operations(self) -> MetadataOperations:
        """The controller's operations over this store's newest image."""
