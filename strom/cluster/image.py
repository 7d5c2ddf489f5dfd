"""The metadata image: brokers, topics, partitions, leaders, ISR, configs.

An immutable value. It changes only by applying metadata records (the same
record types a cluster-mode store will stream from its coordination service),
so the single node and a future cluster build their image the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, TypeVar

from strom.cluster import metadata_version
from strom.config import Value

# The group coordinator's and the transaction coordinator's state (Kafka's names).
GROUP_METADATA_TOPIC = "__consumer_offsets"
TRANSACTION_STATE_TOPIC = "__transaction_state"
# Topics the broker itself owns; clients see them flagged is_internal.
INTERNAL_TOPICS = frozenset({GROUP_METADATA_TOPIC, TRANSACTION_STATE_TOPIC,
                             "__share_group_state"})


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One advertised listener of a broker (KRaft's BrokerEndpoint)."""

    listener: str  # upper case, as Kafka normalises listener names
    host: str
    port: int
    security_protocol: str = "PLAINTEXT"


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    node_id: int
    host: str
    port: int
    rack: str | None = None
    # The broker epoch: the etcd create revision of this registration (a new
    # one per process, as KRaft's), -1 on a single node.
    epoch: int = -1
    # In controlled shutdown: leads nothing, joins no ISR (KRaft's
    # inControlledShutdown; strom has no other kind of fenced broker).
    fenced: bool = False
    # The metadata.version levels it supports (its registration's); None:
    # this strom's own range (cluster/metadata_version.py).
    metadata_versions: tuple[int, int] | None = None
    # Every advertised listener; empty for a registration that names one
    # address only (host, port: a strom from before several listeners).
    endpoints: tuple[Endpoint, ...] = ()

    def endpoint(self, listener: str) -> tuple[str, int] | None:
        """Where a client that came in on `listener` reaches this broker: the
        endpoint of the same listener name, None if it has none (Kafka leaves
        such a broker out of the answers of that listener)."""
        if not self.endpoints:
            return self.host, self.port
        for endpoint in self.endpoints:
            if endpoint.listener == listener:
                return endpoint.host, endpoint.port
        return None


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    partition: int
    leader: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    # Bumped on every change of this partition's assignment or ISR (KRaft's partition epoch).
    partition_epoch: int = 0
    # A reassignment in progress (KIP-455): `replicas` is the target followed by
    # the replicas being removed; the ones being added are not in the ISR yet.
    adding_replicas: tuple[int, ...] = ()
    removing_replicas: tuple[int, ...] = ()

    @property
    def reassigning(self) -> bool:
        return bool(self.adding_replicas or self.removing_replicas)


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    topic_id: uuid.UUID
    partitions: tuple[PartitionInfo, ...]
    configs: Mapping[str, Value] = field(default_factory=dict)

    @property
    def replication_factor(self) -> int:
        if not self.partitions:
            return 0
        first = self.partitions[0]  # its target's, while it is being reassigned
        return len(first.replicas) - len(first.removing_replicas)


# --- records -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TopicRecord:
    name: str
    topic_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class PartitionRecord:
    topic_id: uuid.UUID
    partition: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int
    leader_epoch: int
    partition_epoch: int = 0
    # Kafka's PartitionRecord adding/removing replicas (absent from records
    # written before reassignment existed: none in progress).
    adding_replicas: tuple[int, ...] = ()
    removing_replicas: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class TopicConfigRecord:
    """Sets (value not None) or removes (None) one topic config override."""

    topic_id: uuid.UUID
    name: str
    value: Value


@dataclass(frozen=True, slots=True)
class BrokerConfigRecord:
    """Sets (value not None) or removes (None) a dynamic broker config: the
    cluster-wide default (node_id None, DYNAMIC_DEFAULT_BROKER_CONFIG) or one
    broker's own (DYNAMIC_BROKER_CONFIG), as Kafka's ConfigRecord for a BROKER
    resource named "" or by a node id."""

    name: str
    value: Value
    node_id: int | None = None


@dataclass(frozen=True, slots=True)
class GroupConfigRecord:
    """Sets (value not None) or removes (None) one config of a group (KIP-848's
    per-group settings, consumer.session.timeout.ms, ...), as Kafka's
    ConfigRecord for a GROUP resource. Needs metadata.version 12."""

    group: str
    name: str
    value: Value


@dataclass(frozen=True, slots=True)
class FeatureLevelRecord:
    """Kafka's FeatureLevelRecord: the finalized level of a feature (only
    metadata.version so far, cluster/metadata_version.py)."""

    name: str
    level: int


@dataclass(frozen=True, slots=True)
class RemoveTopicRecord:
    topic_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class ProducerIdsRecord:
    """A block of producer ids handed to a broker; ids below next_producer_id are used."""

    broker_id: int
    next_producer_id: int


# --- security records (Kafka's UserScramCredentialRecord, AccessControlEntryRecord,
# ClientQuotaRecord). Plain values: the security layer (strom/security) gives
# them meaning; the image only stores them.


@dataclass(frozen=True, slots=True)
class ScramCredentialRecord:
    """A user's SCRAM credential for one mechanism (RFC 5802: never the
    password, only the salt and the keys derived from it; base64 here)."""

    name: str
    #: Kafka's ScramMechanism codes: 1 SCRAM-SHA-256, 2 SCRAM-SHA-512.
    mechanism: int
    salt: str
    stored_key: str
    server_key: str
    iterations: int


@dataclass(frozen=True, slots=True)
class RemoveScramCredentialRecord:
    name: str
    mechanism: int


@dataclass(frozen=True, slots=True)
class AclRecord:
    """One ACL binding, with the codes of strom/security/acl_types.py (Kafka's
    AccessControlEntryRecord; the binding itself is its identity)."""

    resource_type: int
    resource_name: str
    pattern_type: int
    principal: str
    host: str
    operation: int
    permission_type: int


@dataclass(frozen=True, slots=True)
class RemoveAclRecord:
    """Removes the AclRecord with exactly these fields."""

    resource_type: int
    resource_name: str
    pattern_type: int
    principal: str
    host: str
    operation: int
    permission_type: int


#: A client quota entity: (entity type, name) pairs sorted by type, the types
#: Kafka's "user", "client-id" and "ip"; name None is that type's default.
QuotaEntity = tuple[tuple[str, str | None], ...]


@dataclass(frozen=True, slots=True)
class ClientQuotaRecord:
    """Sets (value not None) or removes (None) one quota of an entity, e.g.
    producer_byte_rate of (("client-id", None), ("user", "alice"))."""

    entity: QuotaEntity
    key: str
    value: float | None


MetadataRecord = (
    TopicRecord | PartitionRecord | TopicConfigRecord | BrokerConfigRecord | RemoveTopicRecord
    | ProducerIdsRecord | ScramCredentialRecord | RemoveScramCredentialRecord | AclRecord
    | RemoveAclRecord | ClientQuotaRecord | FeatureLevelRecord | GroupConfigRecord
)


@dataclass(frozen=True, slots=True)
class MetadataImage:
    cluster_id: str
    controller_id: int
    brokers: Mapping[int, BrokerInfo]
    topics: Mapping[str, TopicInfo] = field(default_factory=dict)
    broker_configs: Mapping[str, Value] = field(default_factory=dict)
    # Per-broker dynamic configs, by node id (over the cluster-wide ones).
    node_configs: Mapping[int, Mapping[str, Value]] = field(default_factory=dict)
    # The first producer id no broker has been given yet.
    next_producer_id: int = 0
    # user -> mechanism code -> credential.
    scram_credentials: Mapping[str, Mapping[int, ScramCredentialRecord]] = field(
        default_factory=dict)
    acls: frozenset[AclRecord] = frozenset()
    client_quotas: Mapping[QuotaEntity, Mapping[str, float]] = field(default_factory=dict)
    # Group id -> its configs (GroupConfigRecord); groups without any are absent.
    group_configs: Mapping[str, Mapping[str, Value]] = field(default_factory=dict)
    # The finalized metadata.version; metadata without a FeatureLevelRecord
    # was written by a strom from before it: the minimum.
    metadata_version: int = metadata_version.MINIMUM
    # Incremented per applied batch of records; in cluster mode the sequence
    # number of the last batch applied (DescribeQuorum's high watermark).
    offset: int = 0
    # The controller's election epoch: on a single node 1 (it is controller
    # from the start), in cluster mode the etcd create revision of the
    # winning candidacy (higher for every later controller; -1 with none).
    controller_epoch: int = 1

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicInfo | None:
        for topic in self.topics.values():
            if topic.topic_id == topic_id:
                return topic
        return None

    def topic_name(self, name: str | None, topic_id: uuid.UUID | None) -> str | None:
        """A request's topic: its name, or (requests of v13+ that name topics by
        id) the name of its id; None when neither resolves."""
        if name is None and topic_id is not None:
            topic = self.topic_by_id(topic_id)
            return topic.name if topic else None
        return name

    def apply(self, records: Iterable[MetadataRecord]) -> MetadataImage:
        """The image after `records`, in time linear in their number plus the
        topics they touch: partition changes are gathered per topic and each
        touched topic's partition tuple is rebuilt once, at the end. (Rebuilding
        and re-sorting it per PartitionRecord made a CreateTopics of 8,000
        partitions block the broker for 26 s, and 100,000 never finish.)"""
        topics = dict(self.topics)
        by_id = {t.topic_id: t.name for t in topics.values()}
        broker_configs = dict(self.broker_configs)
        node_configs: dict[int, Mapping[str, Value]] | None = None
        next_producer_id = self.next_producer_id
        level = self.metadata_version
        # Copied on first change only: most batches touch none of them.
        scram: dict[str, Mapping[int, ScramCredentialRecord]] | None = None
        acls: set[AclRecord] | None = None
        quotas: dict[QuotaEntity, Mapping[str, float]] | None = None
        group_configs: dict[str, Mapping[str, Value]] | None = None
        # Partitions of the topics these records change, by partition index.
        changed: dict[str, dict[int, PartitionInfo]] = {}
        for record in records:
            if isinstance(record, TopicRecord):
                topics[record.name] = TopicInfo(record.name, record.topic_id, ())
                by_id[record.topic_id] = record.name
                changed[record.name] = {}
            elif isinstance(record, PartitionRecord):
                name = by_id[record.topic_id]
                partitions = changed.get(name)
                if partitions is None:
                    partitions = changed[name] = {p.partition: p for p in topics[name].partitions}
                partitions[record.partition] = PartitionInfo(
                    record.partition,
                    record.leader,
                    record.leader_epoch,
                    record.replicas,
                    record.isr,
                    record.partition_epoch,
                    record.adding_replicas,
                    record.removing_replicas,
                )
            elif isinstance(record, TopicConfigRecord):
                topic = topics[by_id[record.topic_id]]
                configs = dict(topic.configs)
                if record.value is None:
                    configs.pop(record.name, None)
                else:
                    configs[record.name] = record.value
                topics[topic.name] = replace(topic, configs=MappingProxyType(configs))
            elif isinstance(record, BrokerConfigRecord):
                if record.node_id is None:
                    configs = broker_configs
                else:
                    if node_configs is None:
                        node_configs = dict(self.node_configs)
                    configs = dict(node_configs.get(record.node_id, {}))
                if record.value is None:
                    configs.pop(record.name, None)
                else:
                    configs[record.name] = record.value
                if record.node_id is not None:
                    assert node_configs is not None
                    node_configs[record.node_id] = MappingProxyType(configs)
                    if not configs:
                        del node_configs[record.node_id]
            elif isinstance(record, GroupConfigRecord):
                if group_configs is None:
                    group_configs = dict(self.group_configs)
                _set_inner(group_configs, record.group, record.name, record.value)
            elif isinstance(record, RemoveTopicRecord):
                name = by_id.pop(record.topic_id)
                del topics[name]
                changed.pop(name, None)
            elif isinstance(record, ProducerIdsRecord):
                next_producer_id = max(next_producer_id, record.next_producer_id)
            elif isinstance(record, ScramCredentialRecord | RemoveScramCredentialRecord):
                if scram is None:
                    scram = dict(self.scram_credentials)
                _set_inner(scram, record.name, record.mechanism,
                           record if isinstance(record, ScramCredentialRecord) else None)
            elif isinstance(record, AclRecord | RemoveAclRecord):
                if acls is None:
                    acls = set(self.acls)
                if isinstance(record, AclRecord):
                    acls.add(record)
                else:
                    acls.discard(AclRecord(*(getattr(record, f)
                                             for f in AclRecord.__dataclass_fields__)))
            elif isinstance(record, FeatureLevelRecord):
                if record.name == metadata_version.FEATURE_NAME:
                    level = record.level
            elif isinstance(record, ClientQuotaRecord):
                if quotas is None:
                    quotas = dict(self.client_quotas)
                _set_inner(quotas, record.entity, record.key, record.value)
        for name, partitions in changed.items():
            # Creation appends partitions in index order; sort only when not.
            indexes = list(partitions)
            if any(indexes[i] > indexes[i + 1] for i in range(len(indexes) - 1)):
                indexes.sort()
            topics[name] = replace(topics[name],
                                   partitions=tuple(partitions[i] for i in indexes))
        return replace(
            self,
            next_producer_id=next_producer_id,
            topics=MappingProxyType(topics),
            broker_configs=MappingProxyType(broker_configs),
            node_configs=(self.node_configs if node_configs is None
                          else MappingProxyType(node_configs)),
            scram_credentials=(self.scram_credentials if scram is None
                               else MappingProxyType(scram)),
            acls=self.acls if acls is None else frozenset(acls),
            client_quotas=self.client_quotas if quotas is None else MappingProxyType(quotas),
            group_configs=(self.group_configs if group_configs is None
                           else MappingProxyType(group_configs)),
            metadata_version=level,
            offset=self.offset + 1,
        )


_K = TypeVar("_K")
_N = TypeVar("_N")
_V = TypeVar("_V")


def _set_inner(outer: dict[_K, Mapping[_N, _V]], key: _K, name: _N, value: _V | None) -> None:
    """Set (value not None) or remove one value of `outer[key]`, a read-only
    mapping replaced rather than changed (older images share it); a mapping
    left empty is dropped."""
    inner = dict(outer.get(key, {}))
    if value is None:
        inner.pop(name, None)
    else:
        inner[name] = value
    if inner:
        outer[key] = MappingProxyType(inner)
    else:
        outer.pop(key, None)


# --- (de)serialization for the single-node snapshot ------------------------------------


_REASSIGNMENT_LISTS = frozenset({"adding_replicas", "removing_replicas"})
_REPLICA_LISTS = frozenset({"replicas", "isr"}) | _REASSIGNMENT_LISTS


def record_to_json(record: MetadataRecord) -> dict[str, Any]:
    data: dict[str, Any] = {"type": type(record).__name__}
    for name in record.__dataclass_fields__:
        value = getattr(record, name)
        if isinstance(value, uuid.UUID):
            value = str(value)
        elif name in _REASSIGNMENT_LISTS and not value:
            continue  # none in progress: written as before reassignment existed
        elif name == "entity":
            value = [list(pair) for pair in value]
        elif isinstance(value, tuple):
            value = list(value)
        data[name] = value
    return data


_RECORD_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (TopicRecord, PartitionRecord, TopicConfigRecord, BrokerConfigRecord,
                RemoveTopicRecord, ProducerIdsRecord, ScramCredentialRecord,
                RemoveScramCredentialRecord, AclRecord, RemoveAclRecord, ClientQuotaRecord,
                FeatureLevelRecord, GroupConfigRecord)
}


def record_from_json(data: Mapping[str, Any]) -> MetadataRecord:
    cls = _RECORD_TYPES[data["type"]]
    kwargs: dict[str, Any] = {}
    for name in cls.__dataclass_fields__:
        if name not in data:
            continue  # a field added later (with a default), absent from older records
        value = data[name]
        if name == "topic_id":
            value = uuid.UUID(value)
        elif isinstance(value, list) and name in _REPLICA_LISTS:
            value = tuple(value)
        elif name == "entity":
            value = tuple((str(t), None if n is None else str(n)) for t, n in value)
        kwargs[name] = value
    record: MetadataRecord = cls(**kwargs)
    return record


def image_to_records(image: MetadataImage) -> list[MetadataRecord]:
    """Records that rebuild `image` from an empty one (a snapshot)."""
    records: list[MetadataRecord] = []
    if image.metadata_version != metadata_version.MINIMUM:
        # First, so that a snapshot's later records pass the level check.
        records.append(FeatureLevelRecord(metadata_version.FEATURE_NAME,
                                          image.metadata_version))
    if image.next_producer_id:
        records.append(ProducerIdsRecord(image.controller_id, image.next_producer_id))
    for name, value in sorted(image.broker_configs.items()):
        records.append(BrokerConfigRecord(name, value))
    for node_id, configs in sorted(image.node_configs.items()):
        records += [BrokerConfigRecord(name, value, node_id)
                    for name, value in sorted(configs.items())]
    for group, values in sorted(image.group_configs.items()):
        records += [GroupConfigRecord(group, name, value)
                    for name, value in sorted(values.items())]
    for topic in image.topics.values():
        records += topic_to_records(topic)
    for _, mechanisms in sorted(image.scram_credentials.items()):
        records += [credential for _, credential in sorted(mechanisms.items())]
    acls: list[AclRecord] = sorted(image.acls, key=_acl_order)
    records += acls
    for entity, values in sorted(image.client_quotas.items(),
                                 key=lambda item: repr(item[0])):
        records += [ClientQuotaRecord(entity, key, value)
                    for key, value in sorted(values.items())]
    return records


def _acl_order(acl: AclRecord) -> tuple[int, str, int, str, str, int, int]:
    return (acl.resource_type, acl.resource_name, acl.pattern_type, acl.principal, acl.host,
            acl.operation, acl.permission_type)


def topic_to_records(topic: TopicInfo) -> list[MetadataRecord]:
    """Records that create `topic` as it is (part of a snapshot)."""
    records: list[MetadataRecord] = [TopicRecord(topic.name, topic.topic_id)]
    for p in topic.partitions:
        records.append(
            PartitionRecord(topic.topic_id, p.partition, p.replicas, p.isr, p.leader,
                            p.leader_epoch, p.partition_epoch, p.adding_replicas,
                            p.removing_replicas)
        )
    for key, value in sorted(topic.configs.items()):
        records.append(TopicConfigRecord(topic.topic_id, key, value))
    return records
