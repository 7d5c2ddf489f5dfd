"""What an Envelope (KIP-590) carries besides its flags: the client's request,
its principal (Kafka's DefaultPrincipalData) and its address.

Its own module so that only a broker that forwards, or a controller that is
forwarded to, loads the Envelope's schemas (forwarding.py imports it there).
"""

from __future__ import annotations

import io
import ipaddress
from typing import Any

from kio.schema.default_principal_data.v0.data import DefaultPrincipalData
from kio.serial import entity_reader, entity_writer

from strom.protocol.client_frames import encode_request
from strom.protocol.headers import RequestHeader
from strom.security.principal import ANONYMOUS, KafkaPrincipal


def embed_request(header: RequestHeader, request: Any) -> bytes:
    """The client's request as the Envelope carries it: header and body,
    without the size prefix, with the client's correlation id and client id."""
    return encode_request(request, header.correlation_id, header.client_id or "")[4:]


#: Kafka's DefaultKafkaPrincipalBuilder serialization version.
_PRINCIPAL_VERSION = 0
_write_principal = entity_writer(DefaultPrincipalData)
_read_principal = entity_reader(DefaultPrincipalData)


def principal_bytes(principal: DefaultPrincipalData) -> bytes:
    """Kafka's DefaultKafkaPrincipalBuilder.serialize: a version, then the data."""
    out = io.BytesIO()
    out.write(_PRINCIPAL_VERSION.to_bytes(2, "big"))
    _write_principal(out, principal)
    return out.getvalue()


def principal_from_bytes(data: bytes | None) -> DefaultPrincipalData:
    if data is None or len(data) < 2:
        raise ValueError("no principal")
    version = int.from_bytes(data[:2], "big", signed=True)
    if version != _PRINCIPAL_VERSION:
        raise ValueError(f"principal data version {version}")
    principal, _ = _read_principal(memoryview(data), 2)
    return principal


def principal_data(principal: KafkaPrincipal) -> DefaultPrincipalData:
    """What an Envelope carries of the client's principal (KIP-590)."""
    return DefaultPrincipalData(type_=principal.principal_type, name=principal.name,
                                token_authenticated=principal.token_authenticated)


ANONYMOUS_PRINCIPAL = principal_bytes(principal_data(ANONYMOUS))


def address_bytes(client_host: str) -> bytes:
    """A client's address ("/127.0.0.1", as the connection records it) as
    Kafka's InetAddress.getAddress bytes; 0.0.0.0 if it is not known."""
    try:
        return ipaddress.ip_address(client_host.lstrip("/")).packed
    except ValueError:
        return bytes(4)
