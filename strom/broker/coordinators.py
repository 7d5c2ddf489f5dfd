"""The group, transaction and share coordinators, started when first needed.

Kafka creates `__consumer_offsets`, `__transaction_state` and
`__share_group_state` only when a
client first asks for a coordinator, and strom goes one step further: the
coordinators' code is not even loaded until then. A broker that only serves
produce and fetch never pays for it, and start-up to first produce is a
quarter shorter (`bench/run.py --only startup`). A coordinator starts:

- on the first request that needs it (FindCoordinator, JoinGroup,
  InitProducerId, ...), through `groups` / `transactions`;
- as soon as its state topic exists in the metadata image: at broker start
  after a restart, so committed offsets load and transactions left in
  PrepareCommit/PrepareAbort complete without waiting for a client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strom.broker.controller_channel import ControllerChannel
from strom.broker.replica_manager import ReplicaManager
from strom.broker.txn_channel import TxnChannel
from strom.clock import Clock
from strom.cluster.image import GROUP_METADATA_TOPIC, TRANSACTION_STATE_TOPIC, MetadataImage
from strom.cluster.store import MetadataStore
from strom.config import BrokerConfig
from strom.coordinator.share import SHARE_GROUP_STATE_TOPIC
from strom.coordinator.txn.producer_ids import ProducerIdManager
from strom.errors import CoordinatorNotAvailableError

if TYPE_CHECKING:
    from strom.broker.peer_client import PeerClient
    from strom.broker.share_persister import BrokerPersister
    from strom.coordinator.group.service import GroupCoordinator
    from strom.coordinator.share.service import ShareCoordinator
    from strom.coordinator.txn.service import TransactionCoordinator


class Coordinators:
    def __init__(self, config: BrokerConfig, clock: Clock, metadata: MetadataStore,
                 replicas: ReplicaManager, producer_ids: ProducerIdManager,
                 controller: ControllerChannel, txn_channel: TxnChannel, *,
                 peers: PeerClient | None = None) -> None:
        self._config = config
        self._txn_channel = txn_channel
        self._controller = controller
        self._clock = clock
        self._metadata = metadata
        self._replicas = replicas
        self._producer_ids = producer_ids
        self._groups: GroupCoordinator | None = None
        self._transactions: TransactionCoordinator | None = None
        self._shares: ShareCoordinator | None = None
        self._peers = peers
        self._persister: BrokerPersister | None = None
        self._closed = False

    def start(self) -> None:
        """Start the coordinators whose state topic exists, now and whenever
        one appears in the image."""
        self._metadata.subscribe(self._on_image)
        self._on_image(None, self._metadata.image)

    def _on_image(self, old: MetadataImage | None, new: MetadataImage) -> None:
        if self._closed:
            return
        if self._groups is None and GROUP_METADATA_TOPIC in new.topics:
            self._start_groups()
        if self._transactions is None and TRANSACTION_STATE_TOPIC in new.topics:
            self._start_transactions()
        if self._shares is None and SHARE_GROUP_STATE_TOPIC in new.topics:
            self._start_shares()

    @property
    def groups(self) -> GroupCoordinator:
        if self._groups is not None:
            return self._groups
        self._refuse_if_closed()
        return self._start_groups()

    @property
    def transactions(self) -> TransactionCoordinator:
        if self._transactions is not None:
            return self._transactions
        self._refuse_if_closed()
        return self._start_transactions()

    @property
    def shares(self) -> ShareCoordinator:
        """The share coordinator over __share_group_state (KIP-932)."""
        if self._shares is not None:
            return self._shares
        self._refuse_if_closed()
        return self._start_shares()

    @property
    def closed(self) -> bool:
        """The broker is shutting down: no coordinator starts any more."""
        return self._closed

    @property
    def peers(self) -> PeerClient | None:
        """Requests to other brokers (cluster mode; None on a single node)."""
        return self._peers

    @property
    def persister(self) -> BrokerPersister:
        """The broker's Persister (KIP-932): share state kept by the share
        coordinator of each share partition, here or on a peer broker. Getting
        it starts nothing; its first call starts the share coordinator."""
        if self._persister is None:
            from strom.broker.share_persister import BrokerPersister

            self._persister = BrokerPersister(self, lambda: self._metadata.image,
                                              self._replicas.node_id, self._peers)
        return self._persister

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise CoordinatorNotAvailableError("The broker is shutting down.")

    @property
    def started_groups(self) -> GroupCoordinator | None:
        """The group coordinator if it runs, without starting it."""
        return self._groups

    @property
    def started_transactions(self) -> TransactionCoordinator | None:
        return self._transactions

    @property
    def started_shares(self) -> ShareCoordinator | None:
        return self._shares

    def _start_groups(self) -> GroupCoordinator:
        from strom.coordinator.group.service import GroupCoordinator

        groups = GroupCoordinator(self._config, self._clock, self._metadata, self._replicas,
                                  node_id=self._replicas.node_id,
                                  create_topic=self._controller.create_topic)
        # Share groups initialize and delete their partitions' share state here.
        groups.share.set_persister(self.persister)
        self._groups = groups
        groups.start()  # loads the partitions of __consumer_offsets we lead
        return groups

    def _start_transactions(self) -> TransactionCoordinator:
        from strom.coordinator.txn.service import TransactionCoordinator

        transactions = TransactionCoordinator(
            self._config, self._clock, self._metadata, self._replicas,
            self._producer_ids.next_producer_id, node_id=self._replicas.node_id,
            create_topic=self._controller.create_topic)
        # A marker written to __consumer_offsets settles transactional offset
        # commits there (the group coordinator exists: that topic does).
        transactions.on_group_marker = (
            lambda partition, producer_id, commit:
            self.groups.on_transaction_marker(partition, producer_id, commit))
        if self._txn_channel.enabled:
            transactions.marker_sender = self._txn_channel
        self._transactions = transactions
        transactions.start()  # loads the partitions of __transaction_state we lead
        return transactions

    def _start_shares(self) -> ShareCoordinator:
        from strom.coordinator.share.service import ShareCoordinator

        shares = ShareCoordinator(self._config, self._clock, self._metadata, self._replicas,
                                  node_id=self._replicas.node_id,
                                  create_topic=self._controller.create_topic)
        self._shares = shares
        shares.start()  # loads the partitions of __share_group_state we lead
        return shares

    async def stop(self) -> None:
        self._closed = True
        if self._shares is not None:
            await self._shares.stop()
        if self._transactions is not None:
            await self._transactions.stop()
        if self._groups is not None:
            await self._groups.stop()
