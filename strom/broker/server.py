"""The broker process: listeners, lifecycle, graceful shutdown.

Start-up order: data dirs and cluster id (LogManager), metadata image
(LocalMetadataStore; in cluster mode EtcdMetadataStore, registered with
etcd), logs opened and recovered (ReplicaManager), then the listener.
Shutdown reverses it: stop accepting, fail waiting requests, flush every
log, write checkpoints and the clean-shutdown marker, leave etcd.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import os
import ssl
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from strom.broker.connection import KafkaConnection
from strom.broker.connection_limits import ConnectionGuard, ConnectionLimits
from strom.broker.context import BrokerServices
from strom.broker.controller_channel import ControllerChannel
from strom.broker.coordinators import Coordinators
from strom.broker.dynamic_configs import apply_dynamic_configs, follow_dynamic_configs
from strom.broker.forwarding import Forwarder
from strom.broker.replica_manager import ReplicaManager
from strom.broker.router import Registration, load_handlers
from strom.broker.txn_channel import TxnChannel
from strom.clock import SYSTEM_CLOCK, Clock
from strom.cluster.elections import ControllerSettings
from strom.cluster.image import Endpoint
from strom.cluster.local import LocalMetadataStore
from strom.cluster.store import MetadataStore
from strom.config import BrokerConfig
from strom.coordinator.txn.producer_ids import ProducerIdManager
from strom.security import listeners as listener_configs
from strom.security.listeners import SASL_PROTOCOLS, ListenerConfig
from strom.security.principal import KafkaPrincipal
from strom.security.standard_authorizer import (
    AuthorizerConfigError,
    StandardAuthorizer,
    authorizer_from_config,
)
from strom.storage.dir_lock import LogDirLocks
from strom.storage.manager import LogManager

if TYPE_CHECKING:
    from strom.broker.http_listener import HttpListener
    from strom.broker.peer_client import PeerClient
    from strom.cluster.etcd_store import EtcdMetadataStore
    from strom.security.sasl.settings import ListenerSasl

#: An SSL listener's principal from the client certificate (strom.security.tls).
TlsPrincipal = Callable[[ssl.SSLObject], KafkaPrincipal]

log = logging.getLogger(__name__)

#: How long a broker in controlled shutdown waits for the controller to move
#: its leaderships away before it stops anyway (Kafka bounds the same wait by
#: its shutdown deadline). Elections take one metadata batch per 2,000
#: partitions, well within it.
CONTROLLED_SHUTDOWN_TIMEOUT = 30.0


class StartupError(Exception):
    """The broker cannot start; the message is one line for the operator."""


class Broker:
    def __init__(self, config: BrokerConfig, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.config = config
        self.clock = clock
        #: One server per bound listener, in `listeners` order.
        self._servers: list[asyncio.Server] = []
        self._background: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Transport] = set()
        self._guard: ConnectionGuard | None = None
        self._guard_task: asyncio.Task[None] | None = None
        self.services: BrokerServices | None = None
        #: The first listener's bound port (and each listener's, by name).
        self.port: int | None = None
        self.listener_ports: dict[str, int] = {}
        self._listener_hosts: dict[str, str] = {}
        self._locks: LogDirLocks | None = None
        #: The cluster-mode store, stopped (deregistered) last.
        self._store: EtcdMetadataStore | None = None
        #: Connections to other brokers (cluster mode only).
        self._peers: PeerClient | None = None
        #: /metrics and the health checks (strom.http.listener; None: off).
        self.http: HttpListener | None = None
        self._stopping = False

    async def start(self) -> None:
        """Start serving. Raises StartupError, or a KafkaError naming the file
        or setting at fault, with nothing left locked or listening."""
        self.config.check_listeners()  # refuse what strom cannot serve before touching disk
        http_address = self._http_address()
        self._locks = LogDirLocks.acquire(self.config.log_dirs)
        self._stopping = False
        try:
            if http_address is not None:
                # Bound first: /health/ready answers 503 while the logs load.
                await self._start_http(*http_address)
            await self._start()
        except BaseException:
            await self.stop()
            raise

    def _http_address(self) -> tuple[str, int] | None:
        value = self.config.get("strom.http.listener")
        if not value:
            return None
        # aiohttp and prometheus-client are imported only when the listener is on.
        from strom.broker.http_listener import HttpListenerConfigError, parse_listener

        try:
            return parse_listener(str(value))
        except HttpListenerConfigError as exc:
            raise StartupError(str(exc)) from None

    async def _start_http(self, host: str, port: int) -> None:
        from strom.broker.http_listener import SETTING, HttpListener

        self.http = HttpListener(self, host, port)
        if self.config.get("strom.console.enable"):
            # The web console on the same listener: a Kafka client of this broker
            # over loopback, as `strom console` would be (docs/operations.md).
            from strom.console.app import mount_console
            from strom.console.cluster import Cluster

            mount_console(self.http.app, Cluster(self._own_bootstrap))
        try:
            await self.http.start()
        except OSError as exc:
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            raise StartupError(f"cannot listen on {host}:{port} ({SETTING}): {reason}") from None

    def _own_bootstrap(self) -> str:
        """host:port of this broker's PLAINTEXT listener (else its first), for the
        console it serves ("" until they are bound); a wildcard host is reached
        over loopback."""
        name = "PLAINTEXT" if "PLAINTEXT" in self.listener_ports else next(
            iter(self.listener_ports), "")
        if not name:
            return ""
        host = self._listener_hosts.get(name, "")
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, host)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{host}:{self.listener_ports[name]}"

    def not_ready_reason(self) -> str | None:
        """Why the broker cannot take clients yet (None: ready), for /health/ready."""
        if self._stopping:
            return "shutting down"
        services = self.services
        if services is None:
            return "loading logs and metadata"
        if not self._servers or not all(server.is_serving() for server in self._servers):
            return "listeners not serving yet"
        for coordinator, topic in ((services.coordinators.started_groups, "__consumer_offsets"),
                                   (services.coordinators.started_transactions,
                                    "__transaction_state"),
                                   (services.coordinators.started_shares,
                                    "__share_group_state")):
            loading = coordinator.runtime.loading_partitions() if coordinator is not None else []
            if loading:
                return (f"coordinator loading {topic} partition(s) "
                        f"{', '.join(map(str, loading[:5]))}{', ...' if len(loading) > 5 else ''}")
        return None

    @property
    def connection_guard(self) -> ConnectionGuard | None:
        return self._guard

    async def _start(self) -> None:
        config = self.config
        # Connection limits are checked (Kafka's rules) before any file is touched.
        self._guard = ConnectionGuard(ConnectionLimits.from_config(config))
        try:
            authorizer = authorizer_from_config(config)
        except AuthorizerConfigError as exc:
            raise StartupError(str(exc)) from None
        node_id = config.node_id
        cluster_id = config.get("cluster.id")
        log_manager = LogManager(
            config.log_dirs, clock=self.clock, node_id=node_id,
            cluster_id=str(cluster_id) if cluster_id else None,
        )
        specs = listener_configs.listeners(config)
        contexts, principals, sasl = await _listener_security(config, specs)
        loop = asyncio.get_running_loop()
        registry = dict(load_handlers())
        # Bind first so that port 0 resolves before the metadata image names it.
        bound: dict[str, tuple[str, int]] = {}
        for spec in specs:
            server = await self._bind(spec, registry, contexts.get(spec.name),
                                      principals.get(spec.name))
            self._servers.append(server)
            bound[spec.name] = (spec.host, server.sockets[0].getsockname()[1])
        self.listener_ports = {name: port for name, (_, port) in bound.items()}
        self._listener_hosts = {name: host for name, (host, _) in bound.items()}
        self.port = bound[specs[0].name][1]
        endpoints = listener_configs.advertised_endpoints(config, bound)
        advertised = (endpoints[0].host, endpoints[0].port)
        store: MetadataStore
        if config.etcd_endpoints:
            listener_configs.check_inter_broker_listener(config, endpoints)
            store = self._store = await self._etcd_store(log_manager.cluster_id, advertised,
                                                         endpoints)
            if store.metadata_batches == 0:
                # A cluster whose metadata was never written: these etcd
                # endpoints or this cluster.id are not the ones the logs were
                # written under. (Topics deleted while this broker was down are
                # a cluster with history: their logs are deleted below.)
                self._refuse_orphans(log_manager, f"the cluster's metadata in etcd "
                                     f"({', '.join(config.etcd_endpoints)}) was never written",
                                     "check strom.metadata.etcd.endpoints and cluster.id")
        else:
            local = LocalMetadataStore(
                config.log_dirs[0], node_id=node_id, cluster_id=log_manager.cluster_id,
                listener=advertised, endpoints=endpoints,
            )
            if not local.path.exists():
                self._refuse_orphans(log_manager, f"{local.path} is missing",
                                     "restore the file from backup")
            store = local
        apply_dynamic_configs(config, store.image, node_id)
        replicas = ReplicaManager(config, log_manager, node_id=node_id, clock=self.clock)
        replicas.load(store.image)
        store.subscribe(replicas.on_image)
        if isinstance(authorizer, StandardAuthorizer):
            # ACLs decided from the image, followed as it changes.
            authorizer.load(store.image)
            store.subscribe(authorizer.on_image)
        follow_dynamic_configs(store, config, replicas)
        # In a cluster, what only the controller may do is asked of it over the
        # Kafka protocol; a single node is its own controller and opens no connection.
        self._peers = _peer_client(config) if config.etcd_endpoints else None
        controller = ControllerChannel(store, self._peers)
        producer_ids = ProducerIdManager(controller.allocate_producer_ids)
        txn_channel = TxnChannel(lambda: store.image, self._peers)
        coordinators = Coordinators(config, self.clock, store, replicas, producer_ids,
                                    controller, txn_channel, peers=self._peers)
        self.services = BrokerServices(config, self.clock, store, replicas, producer_ids,
                                       coordinators, controller, txn_channel,
                                       forwarder=Forwarder(store, self._peers),
                                       authorizer=authorizer)
        self.services.sasl_listeners = sasl
        # Only /metrics reads the request path's counters; without the HTTP
        # listener (a read-only setting) they are not kept at all.
        self.services.stats.enabled = self.http is not None
        replicas.flusher.start(log_manager.log_dirs, config.syncfs_max_dirty_bytes)
        if config.etcd_endpoints:
            # Followers fetch from leaders; leaders send ISR changes to the controller.
            replicas.start_replication(controller)
        coordinators.start()  # those whose state topic exists; the others on first use
        self._background = loop.create_task(replicas.maintenance.run(), name="log-background")
        self._guard_task = loop.create_task(self._guard.run(), name="connection-timeouts")
        for server in self._servers:
            await server.start_serving()
        log.info("strom broker %d serving on %s (cluster %s)", node_id,
                 ", ".join(f"{name} {host or '*'}:{port}" for name, (host, port) in bound.items()),
                 log_manager.cluster_id)

    async def _bind(self, spec: ListenerConfig, registry: Mapping[int, Registration],
                    context: ssl.SSLContext | None, principal: TlsPrincipal | None,
                    ) -> asyncio.Server:
        try:
            return await asyncio.get_running_loop().create_server(
                lambda: self._connection(registry, spec, principal), spec.host or None,
                spec.port, reuse_address=True, start_serving=False, ssl=context)
        except OSError as exc:
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            if exc.errno == errno.EADDRINUSE:
                reason += "; another process (a broker already running?) uses that port"
            raise StartupError(f"cannot listen on {spec.host}:{spec.port} (listeners, "
                               f"{spec.name}): {reason}") from None

    async def _etcd_store(self, cluster_id: str, advertised: tuple[str, int],
                          endpoints: tuple[Endpoint, ...]) -> EtcdMetadataStore:
        """Cluster mode: register with etcd and follow the cluster's metadata."""
        config = self.config
        if not config.get("cluster.id"):
            # Every broker must name the same cluster, as Kafka's brokers are
            # formatted with one cluster id.
            raise StartupError("cluster.id must be set when strom.metadata.etcd.endpoints is "
                               "(the same on every broker of the cluster)")
        try:
            # Imported only in cluster mode: the etcd client (aetcd, gRPC) is the
            # optional `cluster` extra and costs start-up time a single node never needs.
            from strom.cluster.etcd_client import EtcdClient, EtcdError
            from strom.cluster.etcd_store import EtcdMetadataStore
        except ImportError as exc:
            raise StartupError(f"strom.metadata.etcd.endpoints needs the etcd client ({exc}); "
                               "install strom with the cluster extra: "
                               "pip install 'strom[cluster]'") from None
        try:
            client = EtcdClient(config.etcd_endpoints)
        except ValueError as exc:
            raise StartupError(f"strom.metadata.etcd.endpoints: {exc}") from None
        # etcd leases count whole seconds.
        ttl = max(1, math.ceil(config.broker_session_timeout_ms / 1000))
        store = EtcdMetadataStore(client, cluster=cluster_id, node_id=config.node_id,
                                  listener=advertised, endpoints=endpoints,
                                  rack=config.broker_rack, lease_ttl=ttl,
                                  controller_settings=ControllerSettings.from_config(config),
                                  snapshot_bytes=config.metadata_snapshot_bytes)
        try:
            await store.start()
        except EtcdError as exc:
            await store.stop(deregister=False)
            raise StartupError(f"cannot join the cluster through etcd "
                               f"({', '.join(config.etcd_endpoints)}): {exc}") from None
        except BaseException:
            await store.stop(deregister=False)
            raise
        return store

    @staticmethod
    def _refuse_orphans(log_manager: LogManager, missing: str, fix: str) -> None:
        orphaned = log_manager.partition_dirs_with_records()
        if orphaned:
            # Started without metadata, every log would count as a deleted
            # topic's and be removed: refuse rather than lose the data.
            raise StartupError(
                f"{missing} but {len(orphaned)} partition(s) hold records "
                f"(e.g. {orphaned[0]}); {fix} (starting without it would delete every "
                "topic's data), or remove the partition directories to start empty")

    def _connection(self, registry: Mapping[int, Registration], spec: ListenerConfig,
                    principal: TlsPrincipal | None) -> KafkaConnection:
        assert self.services is not None and self._guard is not None
        connection = KafkaConnection(self.services, registry, self._connections, self._guard)
        connection.listener_name = spec.name
        connection.security_protocol = spec.security_protocol
        connection.tls_principal = principal
        return connection

    @property
    def bootstrap(self) -> str:
        _, host, _ = self.config.listeners[0]
        return f"{host or 'localhost'}:{self.port}"

    async def stop(self) -> None:
        self._stopping = True
        served = self.services is not None
        if self._store is not None and served and self.config.get("controlled.shutdown.enable"):
            # Still serving: clients are told NOT_LEADER_OR_FOLLOWER as each
            # partition's leadership moves, and find the new leaders.
            await self._store.controlled_shutdown(CONTROLLED_SHUTDOWN_TIMEOUT)
        for server in self._servers:
            server.close()
        for transport in list(self._connections):
            transport.abort()
        if self._guard_task is not None:
            self._guard_task.cancel()
            try:
                await self._guard_task
            except asyncio.CancelledError:
                pass
            self._guard_task = None
        if self._background is not None:
            self._background.cancel()
            try:
                await self._background
            except asyncio.CancelledError:
                pass
        if self.services is not None:
            await self.services.replicas.stop_replication()
            if self.services.started_share_partitions is not None:
                await self.services.started_share_partitions.close()
            await self.services.coordinators.stop()
            await self.services.producer_ids.stop()
            if self._peers is not None:
                await self._peers.close()
                self._peers = None
            await self.services.replicas.flusher.stop()
            await self.services.replicas.settled()  # log jobs on worker threads end
            self.services.replicas.shutdown()
            self.services = None
        if self._store is not None:
            # Deregisters at once (its lease revoked) rather than when it expires.
            await self._store.stop()
            self._store = None
        for server in self._servers:
            await server.wait_closed()
        self._servers = []
        if self._locks is not None:
            self._locks.release()
            self._locks = None
        if self.http is not None:
            await self.http.stop()
            self.http = None
        if served:
            log.info("strom broker stopped")


def _peer_client(config: BrokerConfig) -> PeerClient:
    """Cluster mode: the connections to other brokers. Imported here, as the
    etcd store is: a single node never loads the peer client."""
    from strom.broker.peer_client import PeerClient
    from strom.security.inter_broker import peer_security

    return PeerClient(config.node_id, security=peer_security(config))


async def _listener_security(config: BrokerConfig, specs: list[ListenerConfig]) -> tuple[
        dict[str, ssl.SSLContext], dict[str, TlsPrincipal], dict[str, ListenerSasl]]:
    """The TLS contexts, SSL listeners' principal builders and SASL settings
    (JAAS users, JWKS) of the listeners that have them, by listener name; all
    read, and refused, before any port is bound.

    The TLS and SASL modules (cryptography, scramp, PyJWT) are imported only
    when a listener uses them: a PLAINTEXT broker never loads them (they were
    ~35 ms of its start-up and 13 MiB of its idle RSS)."""
    contexts: dict[str, ssl.SSLContext] = {}
    principals: dict[str, TlsPrincipal] = {}
    if any(spec.tls for spec in specs):
        from strom.security.tls import server_context, tls_principal

        contexts = {spec.name: server_context(config, spec.name) for spec in specs if spec.tls}
        principals = {spec.name: tls_principal(config, spec.name) for spec in specs
                      if spec.security_protocol == "SSL"}
    sasl: dict[str, ListenerSasl] = {}
    protocols = config.listener_security_protocols
    if any(protocols.get(name.upper()) in SASL_PROTOCOLS for name, _, _ in config.listeners):
        from strom.security.sasl.settings import sasl_listeners

        sasl = sasl_listeners(config)
        for settings in sasl.values():
            if settings.jwks is not None:
                await settings.jwks.load()
    return contexts, principals, sasl
