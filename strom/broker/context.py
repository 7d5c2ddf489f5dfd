"""What a handler sees: the request's header and the broker's services."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from strom.broker.client_quotas import ClientQuotaManager
from strom.broker.controller_channel import ControllerChannel
from strom.broker.coordinators import Coordinators
from strom.broker.faults import FaultInjector
from strom.broker.fetch_sessions import FetchSessionCache
from strom.broker.replica_manager import ReplicaManager
from strom.broker.stats import BrokerStats
from strom.broker.txn_channel import TxnChannel
from strom.clock import Clock
from strom.cluster.image import MetadataImage
from strom.cluster.store import MetadataStore
from strom.config import BrokerConfig
from strom.coordinator.txn.producer_ids import ProducerIdManager
from strom.protocol.headers import RequestHeader
from strom.security.acl_types import AclOperation, ResourceType
from strom.security.authorizer import ALLOW_ALL, Authorizer
from strom.security.principal import ANONYMOUS, KafkaPrincipal

if TYPE_CHECKING:
    from strom.broker.forwarding import Forwarder
    from strom.broker.share.manager import SharePartitionManager
    from strom.coordinator.group.service import GroupCoordinator
    from strom.coordinator.txn.service import TransactionCoordinator
    from strom.security.sasl.authenticator import SaslAuthenticator
    from strom.security.sasl.settings import ListenerSasl


@dataclass(slots=True)
class BrokerServices:
    config: BrokerConfig
    clock: Clock
    metadata: MetadataStore
    replicas: ReplicaManager
    producer_ids: ProducerIdManager
    coordinators: Coordinators
    #: What only the controller may do, done here or asked of it.
    controller: ControllerChannel
    #: Transaction markers and verifications across brokers (cluster mode).
    txn_channel: TxnChannel
    faults: FaultInjector = field(default_factory=FaultInjector)
    #: Sends admin requests on to the controller (KIP-590); None: never forwards.
    forwarder: Forwarder | None = None
    #: Kafka's Authorizer: ALLOW_ALL unless authorizer.class.name is set.
    authorizer: Authorizer = ALLOW_ALL
    #: Client quotas (client_quotas.py), following the image's ClientQuotaRecords.
    client_quotas: ClientQuotaManager = field(init=False)

    #: Incremental fetch sessions (KIP-227), max.incremental.fetch.session.cache.slots.
    fetch_sessions: FetchSessionCache = field(init=False)

    #: The SharePartitionManager once a share request needed it (share_partitions).
    started_share_partitions: SharePartitionManager | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.client_quotas = ClientQuotaManager(self.metadata, self.config, self.clock)
        slots = self.config.get("max.incremental.fetch.session.cache.slots")
        self.fetch_sessions = FetchSessionCache(slots if isinstance(slots, int) else 1000)

    @property
    def share_partitions(self) -> SharePartitionManager:
        """Share partitions and share sessions (KIP-932), this broker's as
        leader. Made, and its code loaded, by the first share request: a broker
        no share consumer uses never loads it. Until then there is no share
        partition nor session for an image change or a closed connection to end."""
        if self.started_share_partitions is None:
            from strom.broker.share.manager import SharePartitionManager

            metadata = self.metadata
            self.started_share_partitions = SharePartitionManager(
                lambda: self.coordinators.persister, self.config, self.clock,
                lambda group_id: metadata.image.group_configs.get(group_id, {}))
            metadata.subscribe(self.started_share_partitions.on_image)
        return self.started_share_partitions

    #: How each SASL listener authenticates, by listener name (upper case).
    sasl_listeners: dict[str, ListenerSasl] = field(default_factory=dict)
    #: What the request path counts for /metrics (plain ints; stats.py).
    stats: BrokerStats = field(default_factory=BrokerStats)

    @property
    def groups(self) -> GroupCoordinator:
        """The group coordinator over __consumer_offsets (started on first use)."""
        return self.coordinators.groups

    @property
    def transactions(self) -> TransactionCoordinator:
        """The transaction coordinator over __transaction_state (started on first use)."""
        return self.coordinators.transactions

    @property
    def image(self) -> MetadataImage:
        return self.metadata.image

    @property
    def node_id(self) -> int:
        return self.replicas.node_id


@dataclass(slots=True)
class RequestContext:
    header: RequestHeader
    broker: BrokerServices
    # Set by a handler that needs the connection closed after it returns
    # (acks=0 produce that failed: the client can only learn of it that way).
    close_connection: bool = False
    # The client's address as Kafka reports it ("/127.0.0.1"); set by the connection.
    client_host: str = ""
    # The request came from another broker inside an Envelope (KIP-590): it is
    # handled here, never forwarded again.
    forwarded: bool = False
    # Who sent the request: authenticated by TLS or SASL on its connection
    # (or carried in an Envelope); ANONYMOUS on a PLAINTEXT listener.
    principal: KafkaPrincipal = ANONYMOUS
    # The listener it arrived on (a name of `listeners`) and its security protocol.
    listener_name: str = "PLAINTEXT"
    security_protocol: str = "PLAINTEXT"
    # The connection's SASL state on a SASL listener (SaslHandshake and
    # SaslAuthenticate drive it); None elsewhere.
    sasl: SaslAuthenticator | None = None
    # Set by a handler whose response must be the connection's last (a failed
    # SASL authentication): the response is sent, then the connection closes.
    close_after_response: bool = False
    # Which connection the request came on (share sessions end with it).
    connection_id: int = 0

    @property
    def api_version(self) -> int:
        return self.header.api_version

    @property
    def client_address(self) -> str:
        """The client's IP address as ACL hosts name it ("127.0.0.1", no "/")."""
        return self.client_host.removeprefix("/")

    def authorize(self, operation: AclOperation, resource_type: ResourceType,
                  resource_name: str) -> bool:
        """May this request's principal do `operation` on the resource?"""
        return self.broker.authorizer.authorize(self.principal, self.client_address,
                                                operation, resource_type, resource_name)
