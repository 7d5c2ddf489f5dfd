"""Raw ShareFetch / ShareAcknowledge requests for the share partition tests."""

from __future__ import annotations

import base64
import uuid
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from strom.protocol.api import ApiKey
from strom.protocol.records.batch import scan_batches
from strom.testing import EmbeddedBroker
from tests.broker.raw_client import RawClient

ACCEPT, RELEASE, REJECT, RENEW = 1, 2, 3, 4


def member_id() -> str:
    """A share member id as the Java client makes it (a base64 Uuid)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def make_topic(broker: EmbeddedBroker, name: str, partitions: int = 1) -> uuid.UUID:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    return broker.services.image.topics[name].topic_id  # type: ignore[no-any-return]


def produce(broker: EmbeddedBroker, topic: str, values: list[bytes], partition: int = 0,
            config: dict[str, Any] | None = None) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0,
                         **(config or {})})
    for value in values:
        producer.produce(topic, value=value, partition=partition)
    assert producer.flush(30) == 0


class ShareClient:
    """One share consumer's connection and share session."""

    def __init__(self, broker: EmbeddedBroker, group: str, *, version: int = 2) -> None:
        self.wire = RawClient(broker.bootstrap)
        self.group = group
        self.member = member_id()
        self.epoch = 0
        self.version = version

    def close(self) -> None:
        self.wire.close()

    def fetch(self, topic_id: uuid.UUID, partitions: list[int] | None = None, *,
              acks: dict[int, list[tuple[int, int, list[int]]]] | None = None,
              max_wait_ms: int = 0, max_records: int = 500, epoch: int | None = None,
              forget: list[int] | None = None, renew: bool = False) -> Any:
        wanted = sorted(set(partitions or []) | set(acks or {}))
        body: dict[str, Any] = {
            "group_id": self.group, "member_id": self.member,
            "share_session_epoch": self.epoch if epoch is None else epoch,
            "max_wait": max_wait_ms, "min_bytes": 1, "max_bytes": 50 << 20,
            "max_records": max_records, "batch_size": max_records,
            "topics": [{"topic_id": topic_id, "partitions": [
                {"partition_index": p, "acknowledgement_batches": [
                    {"first_offset": f, "last_offset": la, "acknowledge_types": t}
                    for f, la, t in (acks or {}).get(p, [])]}
                for p in wanted]}] if wanted else [],
            "forgotten_topics_data": [{"topic_id": topic_id, "partitions": forget}]
            if forget else [],
        }
        if self.version >= 2:
            body["is_renew_ack"] = renew
        response = self.wire.send(ApiKey.SHARE_FETCH, self.version, body)
        if response.error_code == 0 and epoch is None:
            self.epoch = -1 if self.epoch == -1 else self.epoch + 1
        return response

    def acknowledge(self, topic_id: uuid.UUID, acks: dict[int, list[tuple[int, int, list[int]]]],
                    *, epoch: int | None = None, renew: bool = False) -> Any:
        body: dict[str, Any] = {
            "group_id": self.group, "member_id": self.member,
            "share_session_epoch": self.epoch if epoch is None else epoch,
            "topics": [{"topic_id": topic_id, "partitions": [
                {"partition_index": p, "acknowledgement_batches": [
                    {"first_offset": f, "last_offset": la, "acknowledge_types": t}
                    for f, la, t in batches]}
                for p, batches in acks.items()]}],
        }
        if self.version >= 2:
            body["is_renew_ack"] = renew
        response = self.wire.send(ApiKey.SHARE_ACKNOWLEDGE, self.version, body)
        if response.error_code == 0 and epoch is None:
            self.epoch += 1
        return response


def acquired(response: Any, partition: int = 0) -> list[tuple[int, int, int]]:
    """(first, last, delivery count) of every acquired range of a partition."""
    return [(r.first_offset, r.last_offset, r.delivery_count)
            for t in response.responses for p in t.partitions if p.partition_index == partition
            for r in p.acquired_records]


def acquired_offsets(response: Any, partition: int = 0) -> list[int]:
    return [o for first, last, _ in acquired(response, partition) for o in range(first, last + 1)]


def partition_data(response: Any, partition: int = 0) -> Any:
    for t in response.responses:
        for p in t.partitions:
            if p.partition_index == partition:
                return p
    return None


def batch_offsets(response: Any, partition: int = 0) -> list[tuple[int, int]]:
    """(base, last) offset of every batch returned for a partition."""
    data = partition_data(response, partition)
    if data is None or not data.records:
        return []
    raw = bytes(data.records) if not isinstance(data.records, bytes) else data.records
    return [(h.base_offset, h.last_offset) for h in scan_batches(raw)]
