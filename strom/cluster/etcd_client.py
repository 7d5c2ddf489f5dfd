"""The one typed door to etcd: a thin layer over aetcd (asyncio, gRPC) that
speaks in strom's terms, translates aetcd's errors, and fails over between
the members of an etcd cluster.

aetcd talks to one endpoint per client. strom is given the member list
(`host:port,...`) and keeps one aetcd client at a time: when a call fails
because its member is unreachable (UNAVAILABLE) or does not answer in time
(a member cut off from its quorum cannot commit or serve linearizable reads),
the client is closed and the next member is tried, each member once per call.
A new client means a new gRPC channel, so a member that comes back is used at
once rather than after gRPC's reconnect backoff (up to two minutes).

A transaction is not retried on another member: a request that timed out may
still be applied, so the caller learns the outcome by reading (the metadata
store does, see `EtcdMetadataStore.commit`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

import aetcd
import aetcd.exceptions
import aetcd.rtypes
import aetcd.transactions
import aetcd.utils

log = logging.getLogger(__name__)

T = TypeVar("T")

# Fresh channels reconnect fast; a member that is down is skipped by failover.
_CHANNEL_OPTIONS: dict[str, Any] = {
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
}


class EtcdError(Exception):
    """etcd could not do what was asked."""


class EtcdUnavailableError(EtcdError):
    """No member of the etcd cluster answered (or the answer was lost)."""


class CompactedError(EtcdError):
    """A watch asked for revisions etcd has compacted away."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"etcd compacted revisions below {compact_revision}")
        self.compact_revision = compact_revision


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int


class EventKind(Enum):
    PUT = "PUT"
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    kind: EventKind
    # For a DELETE, value is empty and mod_revision is the revision of the deletion.
    kv: KeyValue


@dataclass(frozen=True, slots=True)
class CreatedAt:
    """Compare: the key's create revision equals `revision` (0: the key does not exist)."""

    key: str
    revision: int


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    value: bytes
    lease: int = 0


@dataclass(frozen=True, slots=True)
class DeleteRange:
    """Delete every key from `key` (included) to `range_end` (excluded)."""

    key: str
    range_end: str


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    # The revision of the transaction's writes when it succeeded, else 0.
    revision: int


def parse_endpoints(endpoints: str | Sequence[str]) -> list[tuple[str, int]]:
    """`host:port,host:port` (or a list of them), `http://` allowed as etcd prints it."""
    items = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
    parsed: list[tuple[str, int]] = []
    for item in items:
        item = item.strip().removeprefix("http://")
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"etcd endpoint {item!r} is not host:port")
        parsed.append((host, int(port)))
    if not parsed:
        raise ValueError("no etcd endpoint given")
    return parsed


def _kv(raw: Any) -> KeyValue:
    return KeyValue(bytes(raw.key).decode(), bytes(raw.value), int(raw.create_revision),
                    int(raw.mod_revision), int(raw.lease))


_UNREACHABLE = (aetcd.exceptions.ConnectionFailedError, aetcd.exceptions.ConnectionTimeoutError)


class EtcdClient:
    def __init__(self, endpoints: str | Sequence[str], *, request_timeout: float = 5.0) -> None:
        self.endpoints = parse_endpoints(endpoints)
        self.request_timeout = request_timeout
        self._current = 0
        self._client: aetcd.Client | None = None

    @property
    def endpoint(self) -> str:
        host, port = self.endpoints[self._current]
        return f"{host}:{port}"

    def _client_now(self) -> aetcd.Client:
        if self._client is None:
            host, port = self.endpoints[self._current]
            self._client = aetcd.Client(host=host, port=port, timeout=self.request_timeout,
                                        options=_CHANNEL_OPTIONS)
        return self._client

    async def _fail_over(self, failed: aetcd.Client) -> None:
        """Drop the client of a member that failed; the next call uses the next member."""
        current: Any = self._client
        if current is None or id(current) != id(failed):
            return  # another task failed over already
        self._client = None
        self._current = (self._current + 1) % len(self.endpoints)
        try:
            await current.close()
        except Exception:  # a broken channel may fail to close; it is dropped either way
            log.debug("closing the etcd client failed", exc_info=True)

    async def _call(self, op: Callable[[aetcd.Client], Awaitable[T]], *, retry: bool = True) -> T:
        attempts = len(self.endpoints) if retry else 1
        last: BaseException | None = None
        for _ in range(attempts):
            client = self._client_now()
            endpoint = self.endpoint
            try:
                return await op(client)
            except _UNREACHABLE as exc:
                last = exc
                log.info("etcd member %s unreachable: %s", endpoint, exc)
                await self._fail_over(client)
            except asyncio.CancelledError as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # this task is being cancelled
                # gRPC cancels the calls of a channel that is closed: another
                # task failed over while this call was in flight.
                last = exc
                log.info("etcd call to %s cut off by a fail-over", endpoint)
            except aetcd.exceptions.ClientError as exc:
                raise EtcdError(str(exc)) from exc
        raise EtcdUnavailableError(f"no etcd member answered ({last})") from last

    async def close(self) -> None:
        client: Any = self._client
        self._client = None
        if client is not None:
            await client.close()

    # --- key-value ------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        async def op(client: aetcd.Client) -> KeyValue | None:
            got = await client.get(key.encode())
            return None if got is None else KeyValue(
                bytes(got.key).decode(), bytes(got.value), got.create_revision,
                got.mod_revision, got.lease)
        return await self._call(op)

    async def get_prefix(self, prefix: str) -> tuple[int, list[KeyValue]]:
        """The keys under `prefix` in key order, and the revision they were read at."""
        async def op(client: aetcd.Client) -> tuple[int, list[KeyValue]]:
            got = await client.get_prefix(prefix.encode(), sort_order="ascend")
            return int(got.header.revision), [_kv(raw) for raw in got.kvs]
        return await self._call(op)

    async def put(self, key: str, value: bytes, *, lease: int = 0) -> int:
        """Write the key; the revision of the write."""
        async def op(client: aetcd.Client) -> int:
            result = await client.put(key.encode(), value, lease=lease or None)
            return int(result.header.revision)
        return await self._call(op)

    async def txn(self, compares: Sequence[CreatedAt], success: Sequence[Put],
                  deletes: Sequence[DeleteRange] = ()) -> TxnResult:
        """Write `success` (and make `deletes`) if every compare holds; never
        retried (see the module doc)."""
        async def op(client: aetcd.Client) -> TxnResult:
            built = [aetcd.transactions.Create(c.key.encode()) == c.revision for c in compares]
            ops: list[Any] = [aetcd.transactions.Put(p.key.encode(), p.value, p.lease or None)
                              for p in success]
            ops += [aetcd.transactions.Delete(d.key.encode(), range_end=d.range_end.encode())
                    for d in deletes]
            succeeded, responses = await client.transaction(compare=built, success=ops,
                                                            failure=[])
            revision = 0
            if succeeded and responses:
                revision = int(responses[0].response_put.header.revision)
            return TxnResult(bool(succeeded), revision)
        return await self._call(op, retry=False)

    # --- leases ---------------------------------------------------------------

    async def grant_lease(self, ttl: int) -> int:
        async def op(client: aetcd.Client) -> int:
            lease = await client.lease(ttl)
            return int(lease.id)
        return await self._call(op)

    async def keep_alive(self, lease_id: int) -> int:
        """Refresh the lease; its new time to live in seconds, 0 once it has expired."""
        async def op(client: aetcd.Client) -> int:
            reply = await client.refresh_lease(lease_id)
            return 0 if reply is None else int(reply.TTL)
        return await self._call(op)

    async def revoke_lease(self, lease_id: int) -> None:
        async def op(client: aetcd.Client) -> None:
            await client.revoke_lease(lease_id)
        await self._call(op)

    # --- watch ----------------------------------------------------------------

    async def watch_prefix(self, prefix: str, start_revision: int
                           ) -> AsyncIterator[WatchEvent]:
        """Every change under `prefix` from `start_revision` on, in revision
        order, until the stream breaks: EtcdUnavailableError (resume from the
        last revision seen), CompactedError (read everything anew)."""
        key = prefix.encode()

        async def op(client: aetcd.Client) -> Any:
            return await client.watch(key, range_end=aetcd.utils.prefix_range_end(key),
                                      start_revision=start_revision)

        try:
            watch = await self._call(op)
        except EtcdError as exc:
            raise self._watch_error(exc) from exc
        client = self._client
        try:
            async for event in watch:
                kind = EventKind.PUT if event.kind == "PUT" else EventKind.DELETE
                kv = event.kv
                yield WatchEvent(kind, KeyValue(bytes(kv.key).decode(), bytes(kv.value),
                                                kv.create_revision, kv.mod_revision, kv.lease))
        except aetcd.exceptions.RevisionCompactedError as exc:
            raise CompactedError(int(exc.compacted_revision)) from exc
        except (*_UNREACHABLE, aetcd.exceptions.ClientError) as exc:
            if client is not None:
                await self._fail_over(client)
            raise EtcdUnavailableError(f"etcd watch broke: {exc}") from exc
        finally:
            try:
                await watch.cancel()
            except Exception:  # the stream is gone already
                log.debug("cancelling an etcd watch failed", exc_info=True)

    @staticmethod
    def _watch_error(exc: EtcdError) -> EtcdError:
        cause = exc.__cause__
        if isinstance(cause, aetcd.exceptions.RevisionCompactedError):
            return CompactedError(int(cause.compacted_revision))
        return exc
