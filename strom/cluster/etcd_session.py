"""A broker's presence in etcd: one lease, kept alive, under which the broker
registers (liveness) and stands as a controller candidate (election).

Both keys hang on the same lease, so when the broker dies, stops answering
for longer than the lease's time to live, or shuts down (the lease is
revoked), its registration and its candidacy vanish in one etcd revision, and
the next candidate becomes controller. A broker whose lease expired while it
was alive (paused, cut off) learns it from the next keep-alive (time to live
0) and opens the session anew: a new lease, a new registration, and a new
candidacy at the end of the line.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace

from strom.cluster.etcd_client import CreatedAt, EtcdClient, EtcdError, Put
from strom.cluster.etcd_codec import encode_candidate, encode_registration
from strom.cluster.etcd_keys import ClusterKeys
from strom.cluster.image import BrokerInfo
from strom.errors import KafkaError

log = logging.getLogger(__name__)


class DuplicateBrokerRegistrationError(KafkaError):
    """Another live broker is registered with this node id (Kafka's
    DuplicateBrokerRegistrationException); it may be this broker's previous
    process, whose lease has not expired yet."""


@dataclass(frozen=True, slots=True)
class Candidacy:
    """A candidate key and the create revision it was won with: what every
    metadata write compares, so that a deposed controller cannot write."""

    key: str
    create_revision: int


#: How often a broker whose node id is still registered asks again.
_REGISTRATION_RETRY_S = 0.25


class BrokerSession:
    def __init__(self, client: EtcdClient, keys: ClusterKeys, broker: BrokerInfo, *,
                 ttl: int, campaign: bool = True) -> None:
        if ttl < 1:
            raise ValueError("the lease's time to live is at least 1 s")
        self._client = client
        self._keys = keys
        self.broker = broker
        self.ttl = ttl
        self.campaign = campaign
        self.lease_id = 0
        #: The registration's create revision: this session's broker epoch.
        self.epoch = -1
        self.candidacy: Candidacy | None = None

    async def open(self, *, wait_s: float = 0.0) -> None:
        """Grant a lease, register, and stand for controller (if campaigning).
        While the node id is registered by another lease, try again for up to
        `wait_s` seconds: a broker restarted right after a crash finds its
        previous process's registration there until that lease expires (at
        most its time to live), and Kafka's brokers likewise retry their
        registration rather than exit."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        warned = False
        while True:
            try:
                await self._open_once()
                return
            except DuplicateBrokerRegistrationError as exc:
                if loop.time() >= deadline:
                    raise
                if not warned:
                    log.warning("%s; waiting up to %.0fs for it to expire", exc, wait_s)
                    warned = True
            # Pacing the retries (Kafka's broker retries its registration with backoff).
            await asyncio.sleep(_REGISTRATION_RETRY_S)

    async def _open_once(self) -> None:
        lease_id = await self._client.grant_lease(self.ttl)
        key = self._keys.broker(self.broker.node_id)
        registered = await self._client.txn(
            [CreatedAt(key, 0)], [Put(key, encode_registration(self.broker), lease_id)])
        if not registered.succeeded:
            await self._client.revoke_lease(lease_id)
            raise DuplicateBrokerRegistrationError(
                f"node id {self.broker.node_id} is registered by another live broker (or by "
                f"this broker's previous process, until its lease of {self.ttl}s expires)")
        self.lease_id = lease_id
        self.epoch = registered.revision
        self.candidacy = None
        if self.campaign:
            candidate = self._keys.candidate(lease_id)
            # The lease id is unique, so the key is new: its create revision is this put's.
            revision = await self._client.put(candidate, encode_candidate(self.broker.node_id),
                                              lease=lease_id)
            self.candidacy = Candidacy(candidate, revision)
        log.info("broker %d registered in etcd under lease %x", self.broker.node_id, lease_id)

    async def keep_alive(self) -> None:
        """Refresh the lease every third of its time to live, forever; open a
        new session when it expired. Cancel to stop."""
        interval = self.ttl / 3
        while True:
            await asyncio.sleep(interval)  # a timer: the period of keep-alives
            try:
                remaining = await self._client.keep_alive(self.lease_id)
                if remaining == 0:
                    log.warning("broker %d: etcd lease %x expired; registering anew",
                                self.broker.node_id, self.lease_id)
                    await self.open()
            except (EtcdError, DuplicateBrokerRegistrationError) as exc:
                # Keep trying: while etcd answers nobody, no other broker can take over either.
                log.warning("broker %d: etcd keep-alive failed: %s", self.broker.node_id, exc)

    async def fence(self) -> bool:
        """Mark the registration fenced (controlled shutdown), keeping its
        lease and epoch; False if it is not this session's any more."""
        self.broker = replace(self.broker, fenced=True)
        if not self.lease_id:
            return False
        key = self._keys.broker(self.broker.node_id)
        result = await self._client.txn(
            [CreatedAt(key, self.epoch)],
            [Put(key, encode_registration(self.broker), self.lease_id)])
        return result.succeeded

    async def close(self) -> None:
        """Revoke the lease: registration and candidacy go at once (controlled shutdown)."""
        if self.lease_id:
            lease_id, self.lease_id = self.lease_id, 0
            self.candidacy = None
            await self._client.revoke_lease(lease_id)
