"""An embedded strom broker for tests: real sockets, real storage, no Docker.

    with EmbeddedBroker() as broker:
        producer = Producer({"bootstrap.servers": broker.bootstrap})

The broker runs its own event loop in a background thread, so blocking
clients (confluent-kafka, kafka-python) and asyncio clients in the test's
own loop can both use it.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from strom.broker.faults import Fault, FaultAction
from strom.config import BROKER_CONFIGS, BrokerConfig
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.protocol.records import Record, iter_batches_records
from strom.testing.tls import TestCertificateAuthority


def _keep_ports(listeners: str, ports: Mapping[str, int]) -> str:
    """`listeners` with each port 0 replaced by the port that listener had."""
    kept = []
    for item in listeners.split(","):
        name, _, address = item.strip().partition("://")
        host, _, port = address.rpartition(":")
        if port == "0" and name.upper() in ports:
            item = f"{name}://{host}:{ports[name.upper()]}"
        kept.append(item)
    return ",".join(kept)


def _plain_jaas(users: Mapping[str, str]) -> str:
    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    options = " ".join(f"user_{name}={quoted(password)}" for name, password in users.items())
    return f"org.apache.kafka.common.security.plain.PlainLoginModule required {options};"


class EmbeddedBroker:
    def __init__(self, data_dir: Path | None = None, *, port: int = 0,
                 host: str = "127.0.0.1", overrides: Mapping[str, str] | None = None,
                 tls: TestCertificateAuthority | None = None,
                 tls_client_auth: str = "none",
                 sasl_users: Mapping[str, str] | None = None,
                 sasl_mechanisms: str = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512") -> None:
        """`tls`: also serve an SSL listener with that CA's broker certificate
        (strom.testing.tls; `bootstrap_for("SSL")`), asking clients for
        certificates as `tls_client_auth` says (Kafka's ssl.client.auth).

        `sasl_users` ({name: password}): also serve a SASL_PLAINTEXT listener
        (`bootstrap_for("SASL_PLAINTEXT")`, `sasl_config(...)`) with
        `sasl_mechanisms`; the users can log in with PLAIN (a JAAS config) and
        with both SCRAM mechanisms (credentials written at start)."""
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="strom-")
            data_dir = Path(self._tmp.name)
        self.data_dir = data_dir
        self.host = host
        self.port = port
        self.overrides = dict(overrides or {})
        self.tls = tls
        self.tls_client_auth = tls_client_auth
        self.sasl_users = dict(sasl_users or {})
        self.sasl_mechanisms = sasl_mechanisms
        #: Each listener's bound port by name, kept across restarts.
        self.listener_ports: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Any = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        """http://host:port of the broker's HTTP listener (strom.http.listener set)."""
        http = self._broker.http if self._broker is not None else None
        if http is None or http.port is None:
            raise RuntimeError("the broker runs no HTTP listener: set strom.http.listener")
        return f"http://{self.host}:{http.port}"

    def bootstrap_for(self, listener: str) -> str:
        """host:port of the listener named `listener` (e.g. "SSL")."""
        return f"{self.host}:{self.listener_ports[listener.upper()]}"

    def _config(self) -> BrokerConfig:
        properties = {
            "listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "log.dirs": str(self.data_dir),
            # Test-sized defaults (a test may override any of them): one partition
            # per internal topic instead of Kafka's 50 keeps start-up fast, and
            # groups rebalance at once instead of waiting 3 s for more members.
            "offsets.topic.num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        if "transaction.state.log.num.partitions" in BROKER_CONFIGS:
            properties["transaction.state.log.num.partitions"] = "1"
        if "share.coordinator.state.topic.num.partitions" in BROKER_CONFIGS:
            properties["share.coordinator.state.topic.num.partitions"] = "1"
        if self.tls is not None:
            properties["listeners"] += f",SSL://{self.host}:0"
            properties.update(self.tls.server_overrides(self.tls_client_auth))
        if self.sasl_users:
            properties["listeners"] += f",SASL_PLAINTEXT://{self.host}:0"
            properties["sasl.enabled.mechanisms"] = self.sasl_mechanisms
            properties["listener.name.sasl_plaintext.plain.sasl.jaas.config"] = _plain_jaas(
                self.sasl_users)
        properties.update(self.overrides)
        if self.listener_ports:
            properties["listeners"] = _keep_ports(properties["listeners"], self.listener_ports)
        return BrokerConfig.from_properties(properties)

    def start(self) -> EmbeddedBroker:
        from strom.broker.server import Broker

        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="strom-broker",
                                        daemon=True)
        self._thread.start()
        broker = Broker(self._config())
        asyncio.run_coroutine_threadsafe(broker.start(), loop).result(timeout=30)
        self._broker = broker
        assert broker.port is not None
        # Keep the ports across restarts so clients' bootstrap addresses stay valid.
        self.port = broker.port
        self.listener_ports = dict(broker.listener_ports)
        if self.sasl_users:
            self._add_scram_users()
        return self

    def _add_scram_users(self) -> None:
        from strom.security.sasl.scram import MECHANISM_CODES, credential_from_password

        image = self.services.image
        records = [credential_from_password(name, mechanism, password)
                   for name, password in self.sasl_users.items()
                   for mechanism in MECHANISM_CODES
                   if MECHANISM_CODES[mechanism] not in image.scram_credentials.get(name, {})]
        if records:
            self.run(self.services.metadata.commit(records))

    def sasl_config(self, user: str, mechanism: str = "SCRAM-SHA-256") -> dict[str, str]:
        """confluent-kafka settings to log in as `user` on the SASL listener."""
        return {"bootstrap.servers": self.bootstrap_for("SASL_PLAINTEXT"),
                "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": mechanism,
                "sasl.username": user, "sasl.password": self.sasl_users[user]}

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._broker.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(timeout=30)
        self._loop.close()
        self._loop = None
        self._broker = None

    def restart(self) -> None:
        """Stop cleanly and start again on the same data and port."""
        self.stop()
        self.start()

    # --- fault injection ----------------------------------------------------------

    def inject_error(self, api: ApiKey | str, error_code: ErrorCode | int,
                     count: int = 1) -> None:
        """Answer the next `count` requests of `api` with `error_code`; the handler
        does not run, so nothing is written."""
        self._add_fault(api, FaultAction.ERROR, count, error_code=ErrorCode(error_code))

    def inject_delay(self, api: ApiKey | str, seconds: float, count: int = 1) -> None:
        """Delay the next `count` requests of `api` before handling them."""
        self._add_fault(api, FaultAction.DELAY, count, delay_s=seconds)

    def drop_responses(self, api: ApiKey | str, count: int = 1) -> None:
        """Never answer the next `count` requests of `api` (the client times out)."""
        self._add_fault(api, FaultAction.DROP, count)

    def close_connection_on(self, api: ApiKey | str, count: int = 1) -> None:
        """Close the connection instead of answering the next `count` requests of `api`."""
        self._add_fault(api, FaultAction.CLOSE, count)

    def lose_responses(self, api: ApiKey | str, count: int = 1) -> None:
        """Handle the next `count` requests of `api`, then close the connection
        instead of answering: the effect happened but the client never hears of it."""
        self._add_fault(api, FaultAction.CLOSE_AFTER, count)

    def clear_faults(self) -> None:
        self.services.faults.clear()

    def _add_fault(self, api: ApiKey | str, action: FaultAction, count: int,
                   **kwargs: Any) -> None:
        api_key = api if isinstance(api, ApiKey) else ApiKey[api.upper().replace("-", "_")]
        self.services.faults.add(Fault(api_key, action, count, **kwargs))

    # --- inspection -------------------------------------------------------------------

    def records(self, topic: str, partition: int | None = None) -> list[Record]:
        """Every record of a topic (or one partition) up to the high watermark, read
        from the broker's log; partitions in order."""

        async def read() -> list[Record]:
            replicas = self.services.replicas
            keys = sorted(k for k in replicas.partitions if k[0] == topic
                          and (partition is None or k[1] == partition))
            if not keys:
                raise KeyError(f"no such topic or partition: {topic} {partition}")
            out: list[Record] = []
            for key in keys:
                p = replicas.partitions[key]
                offset = p.log.log_start_offset
                while offset < p.high_watermark:
                    result = p.log.read(offset, 1 << 24, max_offset=p.high_watermark,
                                        min_one_batch=True)
                    data = b"".join(region.read() for region in result.regions)
                    if not data:
                        break
                    for header, records in iter_batches_records(data):
                        if not header.is_control:
                            out.extend(r for r in records if r.offset >= offset)
                        offset = header.next_offset
            return out

        return list(self.run(read()))

    def committed_offsets(self, group_id: str) -> dict[tuple[str, int], int]:
        """The offsets a consumer group has committed, by (topic, partition)."""

        async def fetch() -> dict[tuple[str, int], int]:
            error, topics = await self.services.groups.fetch_offsets(group_id, None)
            if error:
                raise RuntimeError(f"fetching offsets of {group_id} failed: {error!r}")
            return {(t["name"], p["partition_index"]): p["committed_offset"]
                    for t in topics for p in t["partitions"] if p["committed_offset"] >= 0}

        return dict(self.run(fetch()))

    def apply_retention(self) -> int:
        """Apply time and size retention now; returns the number of segments deleted."""

        async def apply() -> int:
            return int(self.services.replicas.maintenance.apply_retention())

        return int(self.run(apply()))

    def compact(self, topic: str, timeout: float = 60) -> int:
        """Run a log-cleaner pass over every compacted partition of `topic` now,
        whatever its dirty ratio and the cleaner backoff, and return when it is
        done; returns the number of partitions cleaned. The active segment is
        never cleaned, as always."""

        async def clean() -> int:
            return int(await self.services.replicas.cleaner.clean_now(topic))

        return int(self.run(clean(), timeout=timeout))

    def run(self, coro: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the broker's loop (for inspection from tests)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=timeout)

    @property
    def services(self) -> Any:
        return self._broker.services

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
