"""The client side of SASL, for a broker's connections to its peers when
inter.broker.listener.name is a SASL listener (Kafka's inter-broker client).

The mechanism is sasl.mechanism.inter.broker.protocol (PLAIN, SCRAM-SHA-256
or SCRAM-SHA-512); the user name and password are the username/password
options of the broker's own JAAS entry for that listener and mechanism
(listener.name.<l>.<mechanism>.sasl.jaas.config), as Kafka takes them. The
exchange is SaslHandshake v1, then SaslAuthenticate v2 until the mechanism
is done; SCRAM's client side (and its check of the server's signature) is
scramp's.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import scramp

from strom.config import BrokerConfig
from strom.errors import InvalidConfigError, SaslAuthenticationError
from strom.protocol.api import ApiKey, request_class, response_class
from strom.protocol.client_frames import decode_response, encode_request
from strom.protocol.messages import build
from strom.security.sasl.jaas import parse_single_module
from strom.security.sasl.mechanism import GSSAPI, PLAIN, SCRAM_SHA_256, SCRAM_SHA_512

CLIENT_MECHANISMS = (PLAIN, SCRAM_SHA_256, SCRAM_SHA_512)
MAX_RESPONSE = 1 << 20
TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class SaslClientSettings:
    mechanism: str
    username: str
    password: str


def inter_broker_sasl(config: BrokerConfig, listener: str) -> SaslClientSettings:
    """The credentials this broker logs in to its peers with; InvalidConfigError
    (one line) when they are missing or the mechanism is not one strom speaks."""
    mechanism = str(config.get("sasl.mechanism.inter.broker.protocol"))
    if mechanism == GSSAPI or mechanism not in CLIENT_MECHANISMS:
        raise InvalidConfigError(
            f"sasl.mechanism.inter.broker.protocol: {mechanism} is not supported between "
            f"brokers (listener {listener}); use one of {', '.join(CLIENT_MECHANISMS)}")
    prop = f"listener.name.{listener.lower()}.{mechanism.lower()}.sasl.jaas.config"
    text = config.listener_raw(listener.lower(), f"{mechanism.lower()}.sasl.jaas.config")
    if text is None:
        fallback = config.get("sasl.jaas.config")
        prop, text = "sasl.jaas.config", fallback if isinstance(fallback, str) else None
    if not text:
        raise InvalidConfigError(
            f"{prop}: not set; brokers log in to each other with its username and password "
            f"options ({mechanism} on listener {listener})")
    options = parse_single_module(text, prop).options
    if not options.get("username") or "password" not in options:
        raise InvalidConfigError(
            f"{prop}: needs username and password options for the inter-broker client")
    return SaslClientSettings(mechanism, options["username"], options["password"])


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, api_key: int,
                    version: int, body: dict[str, object], correlation_id: int) -> object:
    request = build(request_class(api_key, version), body)
    writer.write(encode_request(request, correlation_id, "strom-broker-sasl"))
    await writer.drain()
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    if not 0 < size <= MAX_RESPONSE:
        raise SaslAuthenticationError(f"bad SASL response size {size}")
    _, response = decode_response(await reader.readexactly(size),
                                  response_class(api_key, version))
    return response


def client_steps(settings: SaslClientSettings) -> Callable[[bytes | None], bytes | None]:
    """The mechanism's next client token given the server's last one (None
    first); None when the client has nothing more to send."""
    if settings.mechanism == PLAIN:
        sent = [False]

        def plain(_: bytes | None) -> bytes | None:
            if sent[0]:
                return None
            sent[0] = True
            return f"\0{settings.username}\0{settings.password}".encode()
        return plain
    client = scramp.ScramClient([settings.mechanism], settings.username, settings.password)
    stage = [0]

    def scram(server: bytes | None) -> bytes | None:
        stage[0] += 1
        if stage[0] == 1:
            return str(client.get_client_first()).encode()
        assert server is not None
        if stage[0] == 2:
            client.set_server_first(server.decode())
            return str(client.get_client_final()).encode()
        client.set_server_final(server.decode())  # checks the broker's signature
        return None
    return scram


def authenticator(settings: SaslClientSettings
                  ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """The PeerSecurity.authenticate hook for these settings."""

    async def authenticate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def run() -> None:
            handshake = await _exchange(reader, writer, ApiKey.SASL_HANDSHAKE, 1,
                                        {"mechanism": settings.mechanism}, 1)
            if getattr(handshake, "error_code", 0):
                raise SaslAuthenticationError(
                    f"the broker does not take {settings.mechanism} (its mechanisms: "
                    f"{', '.join(getattr(handshake, 'mechanisms', ()))})")
            step = client_steps(settings)
            token = step(None)
            correlation = 2
            while token is not None:
                response = await _exchange(reader, writer, ApiKey.SASL_AUTHENTICATE, 2,
                                           {"auth_bytes": token}, correlation)
                correlation += 1
                if getattr(response, "error_code", 0):
                    raise SaslAuthenticationError(
                        f"{settings.mechanism} as {settings.username}: "
                        f"{getattr(response, 'error_message', None) or 'refused'}")
                try:
                    token = step(bytes(getattr(response, "auth_bytes", b"")))
                except scramp.ScramException as exc:
                    raise SaslAuthenticationError(f"the broker's SCRAM answer: {exc}") from None

        await asyncio.wait_for(run(), TIMEOUT_S)

    return authenticate
