"""The replication configs a broker resolves at start (Kafka's names and
defaults), for its followers' fetchers (replica_fetcher.py, cluster mode
only) and the ISR expiry (replica_manager.py).

Apart from the fetchers so that a single node, which never starts them,
does not load them (nor the peer client) to read these."""

from __future__ import annotations

from dataclasses import dataclass

from strom.config import BrokerConfig
from strom.security.inter_broker import PLAINTEXT_PEERS, PeerSecurity, peer_security


@dataclass(frozen=True, slots=True)
class ReplicationSettings:
    """The replication configs (Kafka's names and defaults), resolved once."""

    lag_time_max_ms: int = 30000
    num_fetchers: int = 1
    fetch_max_bytes: int = 1048576
    fetch_response_max_bytes: int = 10485760
    fetch_wait_max_ms: int = 500
    fetch_min_bytes: int = 1
    fetch_backoff_ms: int = 1000
    #: The leader's listener dialled, and how (inter.broker.listener.name, TLS).
    security: PeerSecurity = PLAINTEXT_PEERS

    @classmethod
    def of(cls, config: BrokerConfig) -> ReplicationSettings:
        def get(name: str) -> int:
            value = config.get(name)
            assert isinstance(value, int)
            return value
        return cls(
            lag_time_max_ms=get("replica.lag.time.max.ms"),
            num_fetchers=get("num.replica.fetchers"),
            fetch_max_bytes=get("replica.fetch.max.bytes"),
            fetch_response_max_bytes=get("replica.fetch.response.max.bytes"),
            fetch_wait_max_ms=get("replica.fetch.wait.max.ms"),
            fetch_min_bytes=get("replica.fetch.min.bytes"),
            fetch_backoff_ms=get("replica.fetch.backoff.ms"),
            security=peer_security(config),
        )
