"""What a SASL login costs: connections opened and authenticated one after
another against an embedded broker (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512),
the time per connection + SaslHandshake + SaslAuthenticate, client side
included (for SCRAM the client's PBKDF2 of 4096 iterations, which dominates;
the broker derives nothing at login: it keeps StoredKey and ServerKey).

    .venv/bin/python -m bench.sasl_logins [--count 200]
"""

from __future__ import annotations

import argparse
import socket
import struct
import time
from typing import Any

import scramp

from strom.protocol.api import ApiKey, request_class, response_class
from strom.protocol.client_frames import decode_response, encode_request
from strom.protocol.messages import build
from strom.security.sasl.scram import credential_from_password
from strom.testing import EmbeddedBroker

JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
        'user_alice="alice-secret";')


def _call(sock: socket.socket, api_key: int, version: int, body: dict[str, Any]) -> Any:
    sock.sendall(encode_request(build(request_class(api_key, version), body), 1, "bench"))
    size = struct.unpack(">i", sock.recv(4, socket.MSG_WAITALL))[0]
    data = sock.recv(size, socket.MSG_WAITALL)
    return decode_response(data, response_class(api_key, version))[1]


def login(port: int, mechanism: str) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        _call(sock, ApiKey.SASL_HANDSHAKE, 1, {"mechanism": mechanism})
        if mechanism == "PLAIN":
            response = _call(sock, ApiKey.SASL_AUTHENTICATE, 2,
                             {"auth_bytes": b"\0alice\0alice-secret"})
        else:
            client = scramp.ScramClient([mechanism], "alice", "alice-secret")
            first = _call(sock, ApiKey.SASL_AUTHENTICATE, 2,
                          {"auth_bytes": client.get_client_first().encode()})
            client.set_server_first(first.auth_bytes.decode())
            response = _call(sock, ApiKey.SASL_AUTHENTICATE, 2,
                             {"auth_bytes": client.get_client_final().encode()})
            client.set_server_final(response.auth_bytes.decode())
        assert response.error_code == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    overrides = {"listeners": "SASL_PLAINTEXT://127.0.0.1:0",
                 "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
                 "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS}
    with EmbeddedBroker(overrides=overrides) as broker:
        broker.run(broker.services.metadata.commit([
            credential_from_password("alice", m, "alice-secret")
            for m in ("SCRAM-SHA-256", "SCRAM-SHA-512")]))
        for mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            login(broker.port, mechanism)  # warm up
            started = time.perf_counter()
            for _ in range(args.count):
                login(broker.port, mechanism)
            per = (time.perf_counter() - started) / args.count * 1000
            print(f"{mechanism:14} {per:6.2f} ms per connection + login ({args.count} logins)")


if __name__ == "__main__":
    main()
