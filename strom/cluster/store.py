"""MetadataStore: what the broker, its handlers and its coordinators need of
the store behind the metadata image.

A store is the controller of the cluster as this broker sees it: operations
validate a request against the current image and return metadata records
without changing anything; `commit` makes the records durable (and, in a
cluster, agreed) and applies them to the image; listeners hear of every new
image, in order. The single-node store is `cluster/local.py`; the cluster
mode's store keeps the same records in etcd. Only the composition root
(`broker/server.py`) names a concrete store, so everything else works
unchanged on either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from strom.cluster.image import MetadataImage, MetadataRecord
from strom.config import Value

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

    def commit(self, records: Sequence[MetadataRecord]) -> MetadataImage:
        """Persist the records and apply them; the new image. Raises KafkaErrors."""

    def create_topic_records(
        self,
        name: str,
        num_partitions: int,
        replication_factor: int,
        configs: Mapping[str, Value],
        assignments: Mapping[int, Sequence[int]] | None = None,
        pending: dict[str, str] | None = None,
    ) -> list[MetadataRecord]:
        """`pending`: collision key -> name of the topics created earlier in
        the same request (not yet in the image); this one is added to it."""

    def delete_topic_records(self, name: str) -> list[MetadataRecord]: ...

    def create_partitions_records(self, name: str, count: int,
                                  assignments: Sequence[Sequence[int]] | None = None
                                  ) -> list[MetadataRecord]: ...

    def topic_config_records(self, name: str, changes: Mapping[str, Value]
                             ) -> list[MetadataRecord]:
        """Set (value) or delete (None) topic config overrides."""

    def broker_config_records(self, changes: Mapping[str, Value]) -> list[MetadataRecord]: ...

    def producer_id_block_records(self, block_size: int) -> tuple[int, list[MetadataRecord]]:
        """The start of a fresh block of producer ids, and the record that reserves it."""
