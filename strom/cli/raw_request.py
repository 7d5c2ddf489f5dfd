"""One request, one response, over a plain socket: for the APIs the CLI needs
that librdkafka does not offer (AlterPartitionReassignments,
ListPartitionReassignments). The same kio codecs and header rules the broker
serves with (protocol/client_frames.py). With the session's client settings
(--command-config, -X) the socket speaks TLS (SSL, SASL_SSL: ssl.ca.location,
ssl.certificate.location / ssl.key.location, ssl.endpoint.identification.algorithm)
and logs in with SASL PLAIN or SCRAM (sasl.mechanism, sasl.username,
sasl.password) before the request, as librdkafka would."""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Mapping
from typing import Any

from strom.cli.common import CliError, ConnectError
from strom.protocol.api import request_class, response_class
from strom.protocol.client_frames import decode_response, encode_request
from strom.protocol.messages import build

#: Largest response read (a reassignment listing of many partitions fits).
MAX_RESPONSE = 64 << 20


def request(address: tuple[str, int], api_key: int, version: int, body: Mapping[str, Any],
            timeout: float, config: Mapping[str, Any] | None = None) -> Any:
    """The decoded response to one request sent to `address`, over TLS and
    SASL when the client settings `config` (librdkafka names) say so."""
    try:
        with socket.create_connection(address, timeout=timeout) as plain:
            sock = secure(plain, address[0], config or {})
            return exchange(sock, api_key, version, body)
    except ValueError as exc:
        raise ConnectError(f"{address[0]}:{address[1]} sent a bad response: {exc}") from None
    except OSError as exc:
        raise ConnectError(f"cannot reach {address[0]}:{address[1]}: "
                           f"{exc.strerror or exc}") from None


def exchange(sock: socket.socket, api_key: int, version: int, body: Mapping[str, Any],
             max_response: int = MAX_RESPONSE) -> Any:
    """Send one request on `sock` and read its response (the only one in
    flight). ValueError for a response size out of bounds; OSError from the
    socket."""
    sock.sendall(encode_request(build(request_class(api_key, version), body), 1, "strom-cli"))
    _, response = decode_response(read_frame(sock, max_response),
                                  response_class(api_key, version))
    return response


def read_frame(sock: socket.socket, max_response: int = MAX_RESPONSE) -> bytes:
    """The next response frame on `sock`, without its size prefix. ValueError
    for a size out of bounds; ConnectionError when the broker closed."""
    (size,) = struct.unpack(">i", _receive(sock, 4))
    if not 4 <= size <= max_response:
        raise ValueError(f"bad response size {size}")
    return _receive(sock, size)


def secure(sock: socket.socket, host: str, config: Mapping[str, Any]) -> socket.socket:
    """`sock` with TLS and a SASL login as the client settings `config` ask."""
    protocol = str(config.get("security.protocol", "PLAINTEXT")).upper()
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=config.get("ssl.ca.location"))
        if config.get("ssl.certificate.location"):
            context.load_cert_chain(str(config["ssl.certificate.location"]),
                                    config.get("ssl.key.location"),
                                    config.get("ssl.key.password"))
        if str(config.get("ssl.endpoint.identification.algorithm", "https")).lower() == "none":
            context.check_hostname = False
        sock = context.wrap_socket(sock, server_hostname=host)
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        _sasl_login(sock, config)
    return sock


def _sasl_login(sock: socket.socket, config: Mapping[str, Any]) -> None:
    from strom.protocol.api import ApiKey
    from strom.security.sasl.client import CLIENT_MECHANISMS, SaslClientSettings, client_steps

    mechanism = str(config.get("sasl.mechanism") or config.get("sasl.mechanisms") or "GSSAPI")
    if mechanism.upper() not in CLIENT_MECHANISMS:
        raise CliError(f"sasl.mechanism {mechanism}: this command logs in with "
                       f"{', '.join(CLIENT_MECHANISMS)} only")
    step = client_steps(SaslClientSettings(mechanism.upper(), str(config.get("sasl.username", "")),
                                           str(config.get("sasl.password", ""))))
    handshake = exchange(sock, ApiKey.SASL_HANDSHAKE, 1, {"mechanism": mechanism.upper()})
    if handshake.error_code:
        raise CliError(f"the broker does not take SASL {mechanism} (it takes "
                       f"{', '.join(handshake.mechanisms)})")
    token = step(None)
    while token is not None:
        response = exchange(sock, ApiKey.SASL_AUTHENTICATE, 2, {"auth_bytes": token})
        if response.error_code:
            raise CliError(f"SASL authentication failed: {response.error_message}")
        token = step(bytes(response.auth_bytes))


def _receive(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return bytes(data)


def error_name(code: int) -> str:
    from strom.errors import ErrorCode

    try:
        return ErrorCode(code).name.upper()
    except ValueError:
        return f"error {code}"
