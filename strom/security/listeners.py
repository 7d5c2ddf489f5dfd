"""Listeners as Kafka configures them: `listeners`, `advertised.listeners`,
`listener.security.protocol.map`, `inter.broker.listener.name` /
`security.inter.broker.protocol`, `controller.listener.names`.

Listener names are upper-cased (Kafka's ListenerName.normalised). Every
listener in `listeners` is bound, except those named in
controller.listener.names (a Kafka KRaft controller's own listener: strom
keeps its metadata in etcd or locally and has no controller quorum to
serve). `advertised.listeners`, when set, names what the broker registers:
a subset of the listeners by name, each with the address clients should
use (Kafka's effectiveAdvertisedBrokerListeners); unset, the bound
listeners are registered as bound (an unspecified host as "localhost").
"""

from __future__ import annotations

from dataclasses import dataclass

from strom.cluster.image import Endpoint
from strom.config import BrokerConfig
from strom.errors import InvalidConfigError

TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")


@dataclass(frozen=True, slots=True)
class ListenerConfig:
    """One listener to bind."""

    name: str
    security_protocol: str
    host: str
    port: int

    @property
    def tls(self) -> bool:
        return self.security_protocol in TLS_PROTOCOLS


def listeners(config: BrokerConfig) -> list[ListenerConfig]:
    """The listeners to bind, in `listeners` order; InvalidConfigError (one line)
    for duplicate names or ports, or a name without a security protocol."""
    protocols = config.listener_security_protocols
    controller_names = _controller_names(config)
    result: list[ListenerConfig] = []
    names: set[str] = set()
    ports: set[int] = set()
    for raw_name, host, port in config.listeners:
        name = raw_name.upper()
        if name in names:
            raise InvalidConfigError(f"listeners: listener name {name} appears twice; each "
                                     "listener needs its own name")
        names.add(name)
        if name in controller_names:
            continue
        if port and port in ports:
            raise InvalidConfigError(f"listeners: port {port} appears twice; each listener "
                                     "needs its own port")
        ports.add(port)
        protocol = protocols.get(name)
        if protocol is None:
            raise InvalidConfigError(
                f"listeners: no security protocol defined for listener {name} (add it to "
                f"listener.security.protocol.map, e.g. {name}:PLAINTEXT)")
        result.append(ListenerConfig(name, protocol, host, port))
    if not result:
        raise InvalidConfigError("listeners: no listener for clients (all are named in "
                                 "controller.listener.names)")
    return result


def advertised_endpoints(config: BrokerConfig, bound: dict[str, tuple[str, int]]
                         ) -> tuple[Endpoint, ...]:
    """What this broker registers: one endpoint per advertised listener, ports
    0 replaced with the bound ones. `bound` maps listener name -> (host, port)."""
    protocols = config.listener_security_protocols
    endpoints: list[Endpoint] = []
    if config.get("advertised.listeners"):
        for raw_name, host, port in config.advertised_listeners:
            name = raw_name.upper()
            if name not in bound:
                raise InvalidConfigError(
                    f"advertised.listeners: listener {name} is not in listeners (advertised "
                    "listener names must be a subset of the listeners' names)")
            endpoints.append(Endpoint(name, _client_host(host), port or bound[name][1],
                                      protocols[name]))
    else:
        for name, (host, port) in bound.items():
            endpoints.append(Endpoint(name, _client_host(host), port, protocols[name]))
    return tuple(endpoints)


def _client_host(host: str) -> str:
    return "localhost" if host in ("", "0.0.0.0", "::") else host


def inter_broker_listener(config: BrokerConfig) -> str:
    """Kafka's interBrokerListenerName: inter.broker.listener.name, else the
    listener named after security.inter.broker.protocol (PLAINTEXT)."""
    name = config.get("inter.broker.listener.name")
    if name:
        if config.is_set("security.inter.broker.protocol"):
            raise InvalidConfigError("only one of inter.broker.listener.name and "
                                     "security.inter.broker.protocol may be set")
        return str(name).upper()
    return str(config.get("security.inter.broker.protocol") or "PLAINTEXT").upper()


def check_inter_broker_listener(config: BrokerConfig, endpoints: tuple[Endpoint, ...]) -> None:
    """Cluster mode: the inter-broker listener must be advertised (Kafka refuses
    to start otherwise); peers dial it."""
    name = inter_broker_listener(config)
    if not any(e.listener == name for e in endpoints):
        advertised = ", ".join(e.listener for e in endpoints)
        raise InvalidConfigError(
            f"inter.broker.listener.name: listener {name} is not among the advertised "
            f"listeners ({advertised}); set inter.broker.listener.name to one of them")


def _controller_names(config: BrokerConfig) -> set[str]:
    raw = config.get("controller.listener.names")
    return {item.upper() for item in raw} if isinstance(raw, list) else set()
