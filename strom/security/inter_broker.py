"""How this broker connects to its peers (cluster mode): the listener named
by inter.broker.listener.name (else security.inter.broker.protocol's name,
PLAINTEXT by default), with TLS when that listener's protocol is SSL or
SASL_SSL, using this broker's own ssl.* settings for that listener (its
keystore as client certificate, its truststore, host name checking per
ssl.endpoint.identification.algorithm), as Kafka's inter-broker clients do.

SASL between brokers (SASL_PLAINTEXT / SASL_SSL inter-broker listeners) is
the `authenticate` hook: run on every new peer connection before its first
request; None connects without SASL.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from strom.config import BrokerConfig
from strom.security.listeners import SASL_PROTOCOLS, TLS_PROTOCOLS, inter_broker_listener

#: SASL on a fresh peer connection (SaslHandshake + SaslAuthenticate); raises
#: to fail the connection.
Authenticate = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class PeerSecurity:
    listener_name: str
    security_protocol: str
    ssl_context: ssl.SSLContext | None = None
    authenticate: Authenticate | None = None


PLAINTEXT_PEERS = PeerSecurity("PLAINTEXT", "PLAINTEXT")


def peer_security(config: BrokerConfig) -> PeerSecurity:
    """The inter-broker listener and how to connect to it; InvalidConfigError
    (one line) when its TLS settings cannot be loaded."""
    name = inter_broker_listener(config)
    protocol = config.listener_security_protocols.get(name, "PLAINTEXT")
    # The TLS and SASL client modules (cryptography, scramp) are imported only
    # for an inter-broker listener that uses them.
    context = None
    if protocol in TLS_PROTOCOLS:
        from strom.security.tls import client_context

        context = client_context(config, name)
    authenticate = None
    if protocol in SASL_PROTOCOLS:
        from strom.security.sasl.client import authenticator, inter_broker_sasl

        # sasl.mechanism.inter.broker.protocol with the listener's own JAAS credentials.
        authenticate = authenticator(inter_broker_sasl(config, name))
    return PeerSecurity(name, protocol, context, authenticate)
