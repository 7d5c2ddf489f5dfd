"""A TCP relay in front of a broker that notes which API versions clients send.

Point the broker's ``advertised.listeners`` at the tap, so that clients reach
the broker only through it (metadata and FindCoordinator answer the tap's
address). Every request frame from a client is counted by (client.id,
api_key, api_version); the bytes are relayed unchanged both ways. A client
connecting while the broker is down is disconnected at once, as it would be
by the broker's closed port.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections import Counter

RequestKey = tuple[str | None, int, int]  # (client.id, api_key, api_version)


class RequestTap:
    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.upstream = (host, upstream_port)
        self._listener = socket.create_server((host, 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._requests: Counter[RequestKey] = Counter()
        self._sockets: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="request-tap").start()

    @property
    def address(self) -> str:
        return f"{self.upstream[0]}:{self.port}"

    def requests(self) -> Counter[RequestKey]:
        with self._lock:
            return Counter(self._requests)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sockets = list(self._sockets)
        self._listener.close()
        for s in sockets:
            _shut(s)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                server = socket.create_connection(self.upstream, timeout=2)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._closed:
                    client.close()
                    server.close()
                    return
                self._sockets |= {client, server}
            threading.Thread(target=self._relay, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._relay, args=(server, client, False), daemon=True).start()

    def _relay(self, src: socket.socket, dst: socket.socket, requests: bool) -> None:
        pending = bytearray()
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
                if requests:
                    pending += chunk
                    self._count_frames(pending)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                _shut(s)
                with self._lock:
                    self._sockets.discard(s)

    def _count_frames(self, pending: bytearray) -> None:
        """Count every whole request frame at the start of ``pending`` and drop it."""
        while len(pending) >= 4:
            (size,) = struct.unpack_from(">i", pending)
            if len(pending) < 4 + size:
                return
            api_key, api_version = struct.unpack_from(">hh", pending, 4)
            # Request header v1+: correlation id, then client.id as a nullable string.
            client_id: str | None = None
            if size >= 10:
                (length,) = struct.unpack_from(">h", pending, 12)
                if length >= 0:
                    client_id = pending[14:14 + length].decode(errors="replace")
            with self._lock:
                self._requests[(client_id, api_key, api_version)] += 1
            del pending[:4 + size]


def _shut(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()
