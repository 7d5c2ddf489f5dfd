"""The definitions of the broker and topic configs: Kafka's property names,
types, defaults, bounds and documentation (what a definition is, and how a
value is parsed and checked, is config_schema.py; TLS and SASL are
config_security.py). Loading a broker's configuration and resolving a
topic's effective values is strom/config.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strom.config_schema import (
    INT_MAX,
    LONG_MAX,
    ConfigDef,
    ConfigSource,
    ConfigType,
    T,
    Value,
)
from strom.config_schema import define as _d
from strom.config_security import (
    DEFAULT_SECURITY_PROTOCOL_MAP,
    SASL_CONFIGS,
    SECURITY_PROTOCOLS,
    SSL_CONFIGS,
)

__all__ = [
    "BROKER_CONFIGS", "DEFAULT_SECURITY_PROTOCOL_MAP", "INT_MAX", "LONG_MAX", "SASL_CONFIGS",
    "SECURITY_PROTOCOLS", "SSL_CONFIGS", "TOPIC_CONFIGS", "ConfigDef", "ConfigSource",
    "ConfigType", "TopicConfigDef", "Value",
]

#: Kafka's ThrottledReplicaListValidator.
_THROTTLED = (r"\*|\d+:\d+", "must be the literal '*' or a list of replicas in the following "
              "format: [partitionId]:[brokerId],[partitionId]:[brokerId],...")

_COMPRESSION = ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")


# The transaction coordinator's configs (docs/transactions.md), Kafka's names and defaults.
TRANSACTION_COORDINATOR_CONFIGS: list[ConfigDef] = [
    _d("transaction.state.log.num.partitions", T.INT, 50,
       "Partitions of __transaction_state (fixed once the topic exists).", at_least=1,
       read_only=True),
    _d("transaction.state.log.replication.factor", T.SHORT, 3,
       "Replication factor of __transaction_state; capped at the number of brokers.",
       at_least=1, read_only=True),
    _d("transaction.state.log.segment.bytes", T.INT, 104857600,
       "Segment size of __transaction_state.", at_least=1, read_only=True),
    _d("transaction.state.log.min.isr", T.INT, 2,
       "min.insync.replicas of __transaction_state (capped at its replication factor).",
       at_least=1, read_only=True),
    _d("transaction.max.timeout.ms", T.INT, 900000,
       "Largest transaction timeout a producer may ask for.", at_least=1),
    _d("transaction.abort.timed.out.transaction.cleanup.interval.ms", T.INT, 10000,
       "How often transactions past their timeout are looked for and aborted.", at_least=1),
    _d("transactional.id.expiration.ms", T.INT, 604800000,
       "How long an idle transactional id is kept.", at_least=1),
]

# The share coordinator's configs (docs/share-groups.md), Kafka 4.4's names and defaults.
SHARE_COORDINATOR_CONFIGS: list[ConfigDef] = [
    _d("share.coordinator.state.topic.num.partitions", T.INT, 50,
       "Partitions of __share_group_state (fixed once the topic exists).", at_least=1,
       read_only=True),
    _d("share.coordinator.state.topic.replication.factor", T.SHORT, 3,
       "Replication factor of __share_group_state; capped at the number of brokers.",
       at_least=1, read_only=True),
    _d("share.coordinator.state.topic.min.isr", T.SHORT, 2,
       "min.insync.replicas of __share_group_state (capped at its replication factor).",
       at_least=1, read_only=True),
    _d("share.coordinator.state.topic.segment.bytes", T.INT, 104857600,
       "Segment size of __share_group_state.", at_least=1, read_only=True),
    _d("share.coordinator.snapshot.update.records.per.snapshot", T.INT, 500,
       "Update records written for a share partition between two snapshot records.",
       at_least=0, read_only=True),
    _d("share.coordinator.write.timeout.ms", T.INT, 5000,
       "How long a share-state write waits to be durable.", at_least=1, read_only=True),
    _d("share.coordinator.load.buffer.size", T.INT, 5242880,
       "Bytes read at a time while loading a __share_group_state partition.", at_least=1,
       read_only=True),
    _d("share.coordinator.state.topic.prune.interval.ms", T.INT, 300000,
       "How often records of __share_group_state no share partition needs any more (below "
       "every share partition's latest snapshot) are deleted.", at_least=1, read_only=True),
    _d("share.coordinator.cold.partition.snapshot.interval.ms", T.INT, 300000,
       "A share partition whose latest snapshot is older than this gets a new one, so "
       "pruning can pass its older records.", at_least=1, read_only=True),
]

# The group coordinator's configs (docs/groups.md), Kafka's names and defaults.
GROUP_COORDINATOR_CONFIGS: list[ConfigDef] = [
    _d("offsets.topic.num.partitions", T.INT, 50,
       "Partitions of __consumer_offsets (fixed once the topic exists).", at_least=1,
       read_only=True),
    _d("offsets.topic.replication.factor", T.SHORT, 3,
       "Replication factor of __consumer_offsets; capped at the number of brokers.",
       at_least=1, read_only=True),
    _d("offsets.topic.segment.bytes", T.INT, 104857600,
       "Segment size of __consumer_offsets.", at_least=1, read_only=True),
    _d("offsets.load.buffer.size", T.INT, 5242880,
       "Bytes read at a time while loading a coordinator partition.", at_least=1),
    _d("offsets.retention.minutes", T.INT, 10080,
       "How long committed offsets of an empty group are kept.", at_least=1),
    _d("offsets.retention.check.interval.ms", T.LONG, 600000,
       "How often expired offsets are removed.", at_least=1),
    _d("offsets.commit.timeout.ms", T.INT, 5000,
       "How long a commit waits to be durable before failing.", at_least=1),
    _d("offset.metadata.max.bytes", T.INT, 4096,
       "Largest metadata string of a committed offset."),
    _d("group.initial.rebalance.delay.ms", T.INT, 3000,
       "How long the first rebalance of an empty classic group waits for more members."),
    _d("group.min.session.timeout.ms", T.INT, 6000,
       "Smallest session timeout a classic group member may ask for."),
    _d("group.max.session.timeout.ms", T.INT, 1800000,
       "Largest session timeout a classic group member may ask for."),
    _d("group.max.size", T.INT, INT_MAX, "Most members of a classic group.", at_least=1),
    _d("group.coordinator.rebalance.protocols", T.LIST, ["classic", "consumer", "share"],
       "Group protocols the coordinator serves.", choices=("classic", "consumer", "share"),
       read_only=True),
    # Share groups (KIP-932), Kafka 4.4's names and defaults (docs/share-groups.md).
    _d("group.share.session.timeout.ms", T.INT, 45000,
       "The timeout to detect client failures when using the share group protocol.",
       at_least=1),
    _d("group.share.min.session.timeout.ms", T.INT, 45000,
       "The minimum allowed session timeout for share group members.", at_least=1),
    _d("group.share.max.session.timeout.ms", T.INT, 60000,
       "The maximum allowed session timeout for share group members.", at_least=1),
    _d("group.share.heartbeat.interval.ms", T.INT, 5000,
       "The heartbeat interval given to the members of a share group.", at_least=1),
    _d("group.share.min.heartbeat.interval.ms", T.INT, 5000,
       "The minimum heartbeat interval for share group members.", at_least=1),
    _d("group.share.max.heartbeat.interval.ms", T.INT, 15000,
       "The maximum heartbeat interval for share group members.", at_least=1),
    _d("group.share.max.size", T.INT, 200,
       "The maximum number of members that a single share group can accommodate.",
       at_least=1, at_most=1000),
    _d("group.share.initialize.retry.interval.ms", T.INT, 30000,
       "Time elapsed before retrying initialize share group state request. If below "
       "offsets.commit.timeout.ms, then value of offsets.commit.timeout.ms is used.",
       at_least=1),
    # Share partitions (KIP-932, broker/share/), Kafka 4.4's names and defaults.
    _d("group.share.record.lock.duration.ms", T.INT, 30000,
       "The record acquisition lock duration in milliseconds for share groups.",
       at_least=1000),
    _d("group.share.min.record.lock.duration.ms", T.INT, 15000,
       "The record acquisition lock minimum duration in milliseconds for share groups.",
       at_least=1000),
    _d("group.share.max.record.lock.duration.ms", T.INT, 60000,
       "The record acquisition lock maximum duration in milliseconds for share groups.",
       at_least=1000),
    _d("group.share.delivery.count.limit", T.INT, 5,
       "The maximum number of delivery attempts for a record delivered to a share group.",
       at_least=2),
    _d("group.share.partition.max.record.locks", T.INT, 2000,
       "Share-group record lock limit per share-partition.", at_least=100),
    # The ranges a group's share.delivery.count.limit / share.partition.max.record.locks
    # must be in (broker/group_configs.py), Kafka 4.4's.
    _d("group.share.min.delivery.count.limit", T.INT, 2,
       "The minimum delivery count limit for share groups.", at_least=2),
    _d("group.share.max.delivery.count.limit", T.INT, 10,
       "The maximum delivery count limit for share groups.", at_least=2),
    _d("group.share.min.partition.max.record.locks", T.INT, 100,
       "The minimum share-group record lock limit per share-partition.", at_least=100),
    _d("group.share.max.partition.max.record.locks", T.INT, 4000,
       "The maximum share-group record lock limit per share-partition.", at_least=100),
    _d("group.share.max.share.sessions", T.INT, 2000,
       "The maximum number of share sessions per broker.", at_least=1),
    _d("group.consumer.session.timeout.ms", T.INT, 45000,
       "Session timeout of consumer (KIP-848) group members.", at_least=1),
    _d("group.consumer.min.session.timeout.ms", T.INT, 45000,
       "Smallest consumer group session timeout.", at_least=1),
    _d("group.consumer.max.session.timeout.ms", T.INT, 60000,
       "Largest consumer group session timeout.", at_least=1),
    _d("group.consumer.heartbeat.interval.ms", T.INT, 5000,
       "Heartbeat interval given to consumer group members.", at_least=1),
    _d("group.consumer.min.heartbeat.interval.ms", T.INT, 5000,
       "Smallest consumer group heartbeat interval.", at_least=1),
    _d("group.consumer.max.heartbeat.interval.ms", T.INT, 15000,
       "Largest consumer group heartbeat interval.", at_least=1),
    _d("group.consumer.max.size", T.INT, INT_MAX, "Most members of a consumer group.",
       at_least=1),
    _d("group.consumer.migration.policy", T.STRING, "bidirectional",
       "Online migration of non-empty groups between the classic and the consumer "
       "protocol: bidirectional, upgrade, downgrade or disabled.",
       choices=("bidirectional", "upgrade", "downgrade", "disabled")),
    _d("group.consumer.assignors", T.LIST, ["uniform", "range"],
       "Server-side assignors of consumer groups (uniform, range or Kafka's class "
       "names of them); the first is the default."),
    _d("group.streams.session.timeout.ms", T.INT, 45000,
       "Session timeout of streams group (KIP-1071) members.", at_least=1),
    _d("group.streams.min.session.timeout.ms", T.INT, 45000,
       "Smallest streams group session timeout (streams.session.timeout.ms).", at_least=1),
    _d("group.streams.max.session.timeout.ms", T.INT, 60000,
       "Largest streams group session timeout (streams.session.timeout.ms).", at_least=1),
    _d("group.streams.heartbeat.interval.ms", T.INT, 5000,
       "Heartbeat interval given to streams group members.", at_least=1),
    _d("group.streams.min.heartbeat.interval.ms", T.INT, 5000,
       "Smallest streams group heartbeat interval.", at_least=1),
    _d("group.streams.max.heartbeat.interval.ms", T.INT, 15000,
       "Largest streams group heartbeat interval.", at_least=1),
    _d("group.streams.max.size", T.INT, INT_MAX, "Most members of a streams group.",
       at_least=1),
    _d("group.streams.num.standby.replicas", T.INT, 0,
       "Standby replicas of every task of a streams group.", at_least=0),
    _d("group.streams.max.standby.replicas", T.INT, 2,
       "Largest streams.num.standby.replicas a streams group may set.", at_least=0),
    _d("group.streams.acceptable.recovery.lag", T.LONG, 10000,
       "The lag (offsets to catch up) a streams client may have on a task and still be "
       "caught up; handed to the clients.", at_least=0),
    _d("group.streams.task.offset.interval.ms", T.INT, 60000,
       "How often streams clients report their task changelog offsets.", at_least=1),
    _d("group.streams.min.task.offset.interval.ms", T.INT, 15000,
       "Smallest streams.task.offset.interval.ms.", at_least=1),
    _d("group.streams.initial.rebalance.delay.ms", T.INT, 3000,
       "How long the first assignment of a streams group that was empty waits for more "
       "members to join.", at_least=0),
    _d("group.streams.rack.aware.assignment.tags", T.LIST, [],
       "Client tag keys over whose values the standby tasks of a streams group are "
       "spread (empty: none)."),
]

BROKER_CONFIGS: dict[str, ConfigDef] = {
    d.name: d
    for d in [
        _d("node.id", T.INT, 1, "The node id of this broker.", at_least=0, read_only=True),
        _d("broker.id", T.INT, 1, "Synonym of node.id.", at_least=0, read_only=True),
        _d("listeners", T.LIST, ["PLAINTEXT://localhost:9092"], "Listener URIs to bind.",
           read_only=True),
        _d("advertised.listeners", T.LIST, None,
           "Listeners given to clients in metadata; defaults to listeners.", read_only=True),
        _d("listener.security.protocol.map", T.STRING, DEFAULT_SECURITY_PROTOCOL_MAP,
           "Security protocol of each listener name, NAME:PROTOCOL,... "
           "(Kafka's default map).", read_only=True),
        _d("log.dirs", T.LIST, None, "Data directories; log.dir when unset.", read_only=True),
        _d("log.dir", T.STRING, "./data", "The data directory.", read_only=True),
        _d("num.partitions", T.INT, 1, "Default partitions of an auto-created topic.",
           at_least=1),
        _d("default.replication.factor", T.INT, 1, "Default replication factor.", at_least=1),
        _d("auto.create.topics.enable", T.BOOLEAN, True,
           "Create a topic when a client asks for its metadata or produces to it."),
        _d("delete.topic.enable", T.BOOLEAN, True, "Allow DeleteTopics."),
        _d("message.max.bytes", T.INT, 1048588, "Largest record batch size allowed.",
           at_least=0),
        _d("socket.request.max.bytes", T.INT, 104857600, "Largest request size accepted.",
           at_least=1, read_only=True),
        _d("log.segment.bytes", T.INT, 1073741824, "Segment file size before rolling.",
           at_least=14),
        _d("log.roll.ms", T.LONG, None,
           "Time before rolling a segment; log.roll.hours when unset."),
        _d("log.roll.hours", T.INT, 168, "Time before rolling a segment, in hours.", at_least=1),
        _d("log.roll.jitter.ms", T.LONG, None, "Jitter subtracted from the roll time."),
        _d("log.roll.jitter.hours", T.INT, 0, "Roll jitter in hours.", at_least=0),
        _d("log.retention.ms", T.LONG, None,
           "How long to keep a segment; -1 keeps forever. Overrides minutes and hours."),
        _d("log.retention.minutes", T.INT, None, "Retention in minutes; overrides hours."),
        # Connection and request-memory limits (docs/operations.md), Kafka's names and
        # defaults; strom applies them at start-up.
        _d("queued.max.request.bytes", T.LONG, -1,
           "Bytes of large requests (over 64 KiB) held, partly or fully received, before "
           "connections stop reading; -1: 1 GiB or socket.request.max.bytes if larger.",
           read_only=True),
        _d("max.connections", T.INT, INT_MAX,
           "Most client connections; beyond it new ones are closed at accept.", at_least=0,
           read_only=True),
        _d("max.connections.per.ip", T.INT, INT_MAX,
           "Most client connections from one address; beyond it new ones are closed.",
           at_least=0, read_only=True),
        _d("max.connections.per.ip.overrides", T.STRING, "",
           "Per-address exceptions to max.connections.per.ip: host:count,ip:count.",
           read_only=True),
        _d("connections.max.idle.ms", T.LONG, 600000,
           "Close a connection after this long without bytes received or sent.",
           read_only=True),
        _d("strom.http.listener", T.STRING, None,
           "http://HOST:PORT of the broker's HTTP listener: Prometheus /metrics, "
           "/health/live and /health/ready (docs/operations.md); unset: no HTTP listener.",
           read_only=True),
        _d("strom.processes", T.INT, 1,
           "Broker processes `strom serve` runs, one per core (0: one per usable core; "
           "more than one needs cluster mode; strom/cli/processes.py).", at_least=0,
           read_only=True),
        _d("strom.console.enable", T.BOOLEAN, False,
           "Serve the web console (as `strom console`) on strom.http.listener too "
           "(docs/operations.md, Console).", read_only=True),
        _d("strom.request.receive.timeout.ms", T.LONG, 30000,
           "Close a connection whose request is not fully received this long after it "
           "began (clients give up on a request after request.timeout.ms, 30 s).",
           at_least=1, read_only=True),
        _d("log.retention.hours", T.INT, 168, "Retention in hours."),
        _d("log.retention.bytes", T.LONG, -1, "Largest partition size before deleting."),
        _d("log.retention.check.interval.ms", T.LONG, 300000,
           "How often retention is applied.", at_least=1),
        _d("log.index.interval.bytes", T.INT, 4096, "Bytes between offset index entries.",
           at_least=0),
        _d("log.index.size.max.bytes", T.INT, 10485760, "Largest offset index size.",
           at_least=4),
        _d("log.flush.interval.messages", T.LONG, LONG_MAX,
           "Messages accumulated before a flush.", at_least=1),
        _d("log.flush.interval.ms", T.LONG, None, "Time before a flush."),
        _d("log.flush.scheduler.interval.ms", T.LONG, LONG_MAX,
           "How often to check whether a flush is due."),
        _d("log.flush.offset.checkpoint.interval.ms", T.INT, 60000,
           "How often the recovery point is checkpointed.", at_least=0),
        _d("log.flush.start.offset.checkpoint.interval.ms", T.INT, 60000,
           "How often the log start offset is checkpointed.", at_least=0),
        _d("log.cleanup.policy", T.LIST, ["delete"], "Default cleanup policy.",
           choices=("compact", "delete")),
        _d("log.cleaner.delete.retention.ms", T.LONG, 86400000, "Tombstone retention.",
           at_least=0),
        _d("log.cleaner.min.compaction.lag.ms", T.LONG, 0, "Minimum compaction lag.",
           at_least=0),
        _d("log.cleaner.max.compaction.lag.ms", T.LONG, LONG_MAX, "Maximum compaction lag.",
           at_least=1),
        _d("log.cleaner.min.cleanable.ratio", T.DOUBLE, 0.5, "Minimum dirty ratio to clean."),
        _d("log.cleaner.enable", T.BOOLEAN, True,
           "Run the log cleaner (compaction of cleanup.policy=compact topics).", read_only=True),
        _d("log.cleaner.threads", T.INT, 1, "Logs cleaned at the same time.", at_least=0),
        _d("log.cleaner.backoff.ms", T.LONG, 15000,
           "How long a cleaner waits when no log needs cleaning.", at_least=0),
        _d("log.cleaner.dedupe.buffer.size", T.LONG, 134217728,
           "Memory for the key -> offset maps of all cleaner threads.", at_least=0),
        _d("log.cleaner.io.buffer.size", T.INT, 524288,
           "I/O buffer memory of all cleaner threads.", at_least=0),
        _d("log.cleaner.io.buffer.load.factor", T.DOUBLE, 0.9,
           "How full a cleaner's key -> offset map may get."),
        _d("log.cleaner.io.max.bytes.per.second", T.DOUBLE, 1.7976931348623157e308,
           "Bound on the cleaners' combined read and write rate."),
        _d("log.segment.delete.delay.ms", T.LONG, 60000,
           "Delay before deleting a segment file.", at_least=0),
        _d("log.message.timestamp.type", T.STRING, "CreateTime",
           "CreateTime or LogAppendTime.", choices=("CreateTime", "LogAppendTime")),
        _d("log.message.timestamp.before.max.ms", T.LONG, LONG_MAX,
           "Largest allowed age of a record timestamp.", at_least=0),
        _d("log.message.timestamp.after.max.ms", T.LONG, 3600000,
           "Largest allowed distance of a record timestamp into the future.", at_least=0),
        _d("log.preallocate", T.BOOLEAN, False, "Preallocate segment files."),
        _d("compression.type", T.STRING, "producer", "Compression of stored batches.",
           choices=_COMPRESSION),
        _d("min.insync.replicas", T.INT, 1, "Replicas that must acknowledge acks=all.",
           at_least=1),
        _d("unclean.leader.election.enable", T.BOOLEAN, False, "Elect out-of-sync replicas."),
        _d("strom.acks.all.fsync", T.BOOLEAN, True,
           "fsync the leader's log before acknowledging acks=all (strom is stricter than "
           "Kafka here)."),
        _d("strom.log.flush.syncfs.max.dirty.bytes", T.LONG, 64 * 1024 * 1024,
           "acks=all group commit: flush every partition of a log directory with one "
           "syncfs of its file system while the machine has at most this many bytes dirty "
           "or under writeback (/proc/meminfo); above it, or 0, one fdatasync per partition "
           "(strom/broker/flusher.py).", at_least=0, read_only=True),
        _d("cluster.id", T.STRING, None, "Cluster id; generated on first start.",
           read_only=True),
        # Cluster mode (docs/cluster.md): brokers share metadata through etcd.
        _d("strom.metadata.etcd.endpoints", T.LIST, [],
           "etcd client URLs (http://host:port, comma-separated) holding the cluster's "
           "metadata; empty runs a single node with its metadata in the first log dir.",
           read_only=True),
        _d("broker.session.timeout.ms", T.INT, 9000,
           "A broker whose etcd lease was not renewed this long leaves the cluster (its "
           "lease's time to live, rounded up to whole seconds).", at_least=1000,
           read_only=True),
        _d("broker.rack", T.STRING, None, "The rack of this broker.", read_only=True),
        _d("metadata.log.max.record.bytes.between.snapshots", T.LONG, 20 * 1024 * 1024,
           "The controller snapshots the metadata log in etcd once this many bytes of "
           "metadata batches were written since the last snapshot, and deletes the batches "
           "before it.", at_least=1, read_only=True),
        # Leader election and controlled shutdown (cluster mode; Kafka's names and defaults).
        _d("controlled.shutdown.enable", T.BOOLEAN, True,
           "On shutdown, move leadership away before stopping.", read_only=True),
        _d("auto.leader.rebalance.enable", T.BOOLEAN, True,
           "The controller moves leadership back to preferred replicas.", read_only=True),
        _d("leader.imbalance.check.interval.seconds", T.LONG, 300,
           "How often the controller restores preferred leaders.", at_least=1,
           read_only=True),
        # Replication (cluster mode; Kafka's names and defaults).
        _d("replica.lag.time.max.ms", T.LONG, 30000,
           "A follower that has not caught up with the leader's log end for this long "
           "leaves the ISR.", at_least=1, read_only=True),
        _d("num.replica.fetchers", T.INT, 1,
           "Fetcher tasks per source broker.", at_least=1, read_only=True),
        _d("max.incremental.fetch.session.cache.slots", T.INT, 1000,
           "Incremental fetch sessions (KIP-227) the broker keeps; when full, a new "
           "session takes the slot of an idle or smaller one, or is not created.",
           at_least=0, read_only=True),
        _d("replica.fetch.max.bytes", T.INT, 1048576,
           "Bytes a follower fetches per partition and request (the first batch even "
           "if larger).", at_least=0, read_only=True),
        _d("replica.fetch.response.max.bytes", T.INT, 10485760,
           "Bytes a follower fetches per request.", at_least=0, read_only=True),
        _d("replica.fetch.wait.max.ms", T.INT, 500,
           "How long the leader holds a follower's fetch without new data.", at_least=0,
           read_only=True),
        _d("replica.fetch.min.bytes", T.INT, 1,
           "Bytes a follower's fetch waits for.", at_least=1, read_only=True),
        _d("replica.fetch.backoff.ms", T.INT, 1000,
           "Pause of a follower's fetcher after an error.", at_least=0, read_only=True),
        # Replication throttles (dynamic; Kafka's ReplicationQuotaManager), bytes/s.
        _d("leader.replication.throttled.rate", T.LONG, LONG_MAX,
           "Bytes/s a leader sends to followers out of the ISR of its throttled replicas "
           "(leader.replication.throttled.replicas).", at_least=0),
        _d("follower.replication.throttled.rate", T.LONG, LONG_MAX,
           "Bytes/s a follower out of the ISR fetches for its throttled replicas "
           "(follower.replication.throttled.replicas).", at_least=0),
        # Client quotas (docs/security.md "Client quotas"): the windows rates are measured in.
        _d("quota.window.num", T.INT, 11, "Samples a client quota's rate is measured over.",
           at_least=1, read_only=True),
        _d("quota.window.size.seconds", T.INT, 1, "Length of each client quota sample.",
           at_least=1, read_only=True),
        _d("controller.quota.window.num", T.INT, 11,
           "Samples of controller_mutation_rate (its token bucket holds num * size * rate).",
           at_least=1, read_only=True),
        _d("controller.quota.window.size.seconds", T.INT, 1,
           "Length of each controller_mutation_rate sample.", at_least=1, read_only=True),
        _d("replica.alter.log.dirs.io.max.bytes.per.second", T.LONG, LONG_MAX,
           "Accepted for Kafka's tools; strom does not move replicas between its log "
           "dirs.", at_least=0),
        # Authorization (strom/security/standard_authorizer.py, docs/security.md).
        _d("authorizer.class.name", T.STRING, "",
           "The authorizer: org.apache.kafka.metadata.authorizer.StandardAuthorizer "
           "turns on ACLs; empty allows every request.", read_only=True),
        _d("super.users", T.STRING, "",
           "Principals allowed everything, separated by ';' (User:admin;User:ops).",
           read_only=True),
        _d("allow.everyone.if.no.acl.found", T.BOOLEAN, False,
           "Allow everyone to act on a resource no ACL applies to.", read_only=True),
        *GROUP_COORDINATOR_CONFIGS,
        *TRANSACTION_COORDINATOR_CONFIGS,
        *SHARE_COORDINATOR_CONFIGS,
        *SSL_CONFIGS,
        *SASL_CONFIGS,
    ]
}


@dataclass(frozen=True, slots=True)
class TopicConfigDef:
    """A topic-level config and the broker property that provides its default."""

    definition: ConfigDef
    synonym: str | None

    @property
    def name(self) -> str:
        return self.definition.name


def _t(name: str, type_: ConfigType, default: Value, synonym: str | None, doc: str,
       **kw: Any) -> TopicConfigDef:
    return TopicConfigDef(ConfigDef(name, type_, default, doc, **kw), synonym)


TOPIC_CONFIGS: dict[str, TopicConfigDef] = {
    d.name: d
    for d in [
        _t("cleanup.policy", T.LIST, ["delete"], "log.cleanup.policy",
           "delete, compact, or both.", choices=("compact", "delete")),
        _t("compression.type", T.STRING, "producer", "compression.type",
           "Compression of stored batches.", choices=_COMPRESSION),
        _t("delete.retention.ms", T.LONG, 86400000, "log.cleaner.delete.retention.ms",
           "Tombstone retention on compacted topics.", at_least=0),
        _t("file.delete.delay.ms", T.LONG, 60000, "log.segment.delete.delay.ms",
           "Delay before deleting a segment file.", at_least=0),
        _t("flush.messages", T.LONG, LONG_MAX, "log.flush.interval.messages",
           "Messages accumulated before a flush.", at_least=1),
        _t("flush.ms", T.LONG, LONG_MAX, "log.flush.interval.ms",
           "Time before a flush.", at_least=0),
        _t("index.interval.bytes", T.INT, 4096, "log.index.interval.bytes",
           "Bytes between offset index entries.", at_least=0),
        _t("max.compaction.lag.ms", T.LONG, LONG_MAX, "log.cleaner.max.compaction.lag.ms",
           "Maximum compaction lag.", at_least=1),
        _t("max.message.bytes", T.INT, 1048588, "message.max.bytes",
           "Largest record batch size allowed.", at_least=0),
        _t("message.timestamp.type", T.STRING, "CreateTime", "log.message.timestamp.type",
           "CreateTime or LogAppendTime.", choices=("CreateTime", "LogAppendTime")),
        _t("message.timestamp.before.max.ms", T.LONG, LONG_MAX,
           "log.message.timestamp.before.max.ms", "Largest allowed record age.", at_least=0),
        _t("message.timestamp.after.max.ms", T.LONG, 3600000,
           "log.message.timestamp.after.max.ms", "Largest allowed future timestamp.",
           at_least=0),
        _t("min.cleanable.dirty.ratio", T.DOUBLE, 0.5, "log.cleaner.min.cleanable.ratio",
           "Minimum dirty ratio to clean.", at_least=0),
        _t("min.compaction.lag.ms", T.LONG, 0, "log.cleaner.min.compaction.lag.ms",
           "Minimum compaction lag.", at_least=0),
        _t("min.insync.replicas", T.INT, 1, "min.insync.replicas",
           "Replicas that must acknowledge acks=all.", at_least=1),
        _t("preallocate", T.BOOLEAN, False, "log.preallocate", "Preallocate segment files."),
        _t("retention.bytes", T.LONG, -1, "log.retention.bytes",
           "Largest partition size before deleting old segments."),
        _t("retention.ms", T.LONG, 604800000, "log.retention.ms",
           "How long to keep a segment; -1 keeps forever.", at_least=-1),
        _t("segment.bytes", T.INT, 1073741824, "log.segment.bytes",
           "Segment file size before rolling.", at_least=14),
        _t("segment.index.bytes", T.INT, 10485760, "log.index.size.max.bytes",
           "Largest offset index size.", at_least=4),
        _t("segment.jitter.ms", T.LONG, 0, "log.roll.jitter.ms", "Roll jitter.", at_least=0),
        _t("segment.ms", T.LONG, 604800000, "log.roll.ms", "Time before rolling a segment.",
           at_least=1),
        _t("unclean.leader.election.enable", T.BOOLEAN, False,
           "unclean.leader.election.enable", "Elect out-of-sync replicas."),
        _t("leader.replication.throttled.replicas", T.LIST, [], None,
           "Replicas (partition:broker, or *) whose leader throttles followers out of "
           "the ISR to leader.replication.throttled.rate.", item_pattern=_THROTTLED),
        _t("follower.replication.throttled.replicas", T.LIST, [], None,
           "Replicas (partition:broker, or *) whose follower, out of the ISR, fetches "
           "at most follower.replication.throttled.rate.", item_pattern=_THROTTLED),
    ]
}
