"""/metrics: a prometheus-client Collector that reads the broker at scrape time.

Nothing here runs on the request path. Counters the request path keeps
(strom.broker.stats: plain ints) and state the broker has anyway (partitions,
logs, connections, committed offsets) become Prometheus samples only when
Prometheus asks. Names follow one scheme, `strom_<what>_<unit>`, and each
HELP text names the Kafka MBean it corresponds to (docs/operations.md,
"Metrics", has the table).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from strom.broker.stats import Histogram
from strom.protocol.api import ApiKey

if TYPE_CHECKING:
    from strom.broker.context import BrokerServices
    from strom.broker.runtime_probes import RuntimeProbes
    from strom.broker.server import Broker


def _api_name(api_key: int) -> str:
    """Kafka's request names as its RequestMetrics label them (Produce, FetchConsumer
    aside): ApiKey.PRODUCE -> "Produce"."""
    try:
        name = ApiKey(api_key).name
    except ValueError:
        return str(api_key)
    return "".join(part.capitalize() for part in name.split("_"))


def _error_name(code: int) -> str:
    from strom.errors import ErrorCode

    try:
        return ErrorCode(code).name.upper()
    except ValueError:
        return str(code)


def histogram(name: str, doc: str, labels: list[str],
              series: Iterator[tuple[list[str], Histogram]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for values, hist in series:
        family.add_metric(values, hist.buckets(), hist.sum)
    return family


class BrokerCollector(Collector):
    """Every strom_* metric of one broker."""

    def __init__(self, broker: Broker, probes: RuntimeProbes) -> None:
        self._broker = broker
        self._probes = probes

    def collect(self) -> Iterator[Metric]:
        yield from self._runtime()
        services = self._broker.services
        if services is None:
            return  # starting (logs loading) or stopped: runtime metrics only
        yield from self._topics(services)
        yield from self._requests(services)
        yield from self._replicas(services)
        yield from self._logs(services)
        yield from self._groups(services)
        yield from self._transactions(services)
        yield from self._fetch_sessions(services)
        yield from self._connections()

    # -- families -----------------------------------------------------------------------

    def _runtime(self) -> Iterator[Metric]:
        probes = self._probes
        yield histogram(
            "strom_event_loop_lag_seconds",
            "How late the event loop ran a timer (a probe every 0.25 s). No Kafka MBean; "
            "the closest is kafka.network:type=SocketServer,name=NetworkProcessorAvgIdlePercent.",
            [], iter([([], probes.loop_lag)]))
        yield histogram(
            "strom_gc_pause_seconds",
            "Pauses of Python's cyclic garbage collector by generation (gc.callbacks); "
            "the JVM's java.lang:type=GarbageCollector CollectionTime.",
            ["generation"], ((([str(g)]), h) for g, h in enumerate(probes.gc_pauses)))

    def _topics(self, services: BrokerServices) -> Iterator[Metric]:
        services.stats.forget_topics(services.image.topics)  # deleted topics' series end
        topics = services.stats.topics
        families = [
            ("strom_topic_messages_in_total", "messages_in",
             "Records appended by Produce requests; kafka.server:type=BrokerTopicMetrics,"
             "name=MessagesInPerSec,topic=<topic>."),
            ("strom_topic_bytes_in_total", "bytes_in",
             "Record batch bytes appended by Produce requests; kafka.server:type="
             "BrokerTopicMetrics,name=BytesInPerSec,topic=<topic>."),
            ("strom_topic_bytes_out_total", "bytes_out",
             "Record bytes sent to consumers; kafka.server:type=BrokerTopicMetrics,"
             "name=BytesOutPerSec,topic=<topic>."),
            ("strom_topic_replication_bytes_out_total", "replication_bytes_out",
             "Record bytes sent to follower replicas; kafka.server:type=BrokerTopicMetrics,"
             "name=ReplicationBytesOutPerSec."),
        ]
        for name, attribute, doc in families:
            family = CounterMetricFamily(name, doc, labels=["topic"])
            for topic, counters in topics.items():
                family.add_metric([topic], getattr(counters, attribute))
            yield family

    def _requests(self, services: BrokerServices) -> Iterator[Metric]:
        stats = services.stats
        yield histogram(
            "strom_request_duration_seconds",
            "Time from a request's decoding to its response, by API (the _count is the "
            "request count); kafka.network:type=RequestMetrics,name=TotalTimeMs,request=<api> "
            "and name=RequestsPerSec.",
            ["api"], (([_api_name(key)], hist) for key, hist in sorted(stats.requests.items())))
        errors = CounterMetricFamily(
            "strom_request_errors_total",
            "Error codes in responses (each failed partition of a response counts), by API "
            "and Kafka error name; kafka.network:type=RequestMetrics,name=ErrorsPerSec,"
            "request=<api>,error=<error>.", labels=["api", "error"])
        for (key, code), count in sorted(stats.errors.items()):
            errors.add_metric([_api_name(key), _error_name(code)], count)
        yield errors
        throttle = CounterMetricFamily(
            "strom_request_throttle_time_seconds_total",
            "Time clients were throttled by client quotas, by API; kafka.server:"
            "type=Produce|Fetch|Request,user=,client-id= throttle-time.", labels=["api"])
        for key, seconds in sorted(stats.throttle_seconds.items()):
            throttle.add_metric([_api_name(key)], seconds)
        yield throttle

    def _connections(self) -> Iterator[Metric]:
        guard = self._broker.connection_guard
        connections = guard.connections() if guard is not None else []
        yield GaugeMetricFamily(
            "strom_connections", "Open client connections; kafka.server:type=socket-server-"
            "metrics,name=connection-count.", value=len(connections))
        yield GaugeMetricFamily(
            "strom_requests_in_flight", "Requests being handled, not yet answered; "
            "kafka.network:type=RequestChannel,name=RequestQueueSize plus requests in handlers.",
            value=sum(getattr(c, "in_flight", 0) for c in connections))
        yield GaugeMetricFamily(
            "strom_request_queue_size", "Requests received but not started (a connection "
            "holds at most 64 in flight); kafka.network:type=RequestChannel,"
            "name=RequestQueueSize.", value=sum(getattr(c, "queued", 0) for c in connections))

    def _replicas(self, services: BrokerServices) -> Iterator[Metric]:
        replicas = services.replicas
        leaders = under = under_min = 0
        for partition in replicas.partitions.values():
            if not partition.is_leader:
                continue
            leaders += 1
            if len(partition.isr) < len(partition.replicas):
                under += 1
            if len(partition.isr) < partition.config.int("min.insync.replicas"):
                under_min += 1
        offline = sum(1 for topic in services.image.topics.values()
                      for info in topic.partitions if info.leader < 0)
        yield GaugeMetricFamily("strom_partitions", "Partition replicas hosted here; "
                                "kafka.server:type=ReplicaManager,name=PartitionCount.",
                                value=len(replicas.partitions))
        yield GaugeMetricFamily("strom_leader_partitions", "Partitions led here; "
                                "kafka.server:type=ReplicaManager,name=LeaderCount.",
                                value=leaders)
        yield GaugeMetricFamily(
            "strom_under_replicated_partitions", "Partitions led here whose ISR is smaller "
            "than their replica set; kafka.server:type=ReplicaManager,"
            "name=UnderReplicatedPartitions.", value=under)
        yield GaugeMetricFamily(
            "strom_under_min_isr_partitions", "Partitions led here whose ISR is below "
            "min.insync.replicas; kafka.server:type=ReplicaManager,"
            "name=UnderMinIsrPartitionCount.", value=under_min)
        yield GaugeMetricFamily(
            "strom_offline_partitions", "Partitions of the cluster without a leader, as this "
            "broker's metadata image shows them (every broker reports the same: aggregate "
            "with max); kafka.controller:type=KafkaController,name=OfflinePartitionsCount.",
            value=offline)
        yield GaugeMetricFamily(
            "strom_offline_replicas", "Replicas hosted here that cannot serve after a storage "
            "error; kafka.log:type=LogManager,name=OfflineLogDirectoryCount (per partition).",
            value=len(replicas.offline))
        yield CounterMetricFamily("strom_isr_shrinks_total", "ISR shrinks proposed by this "
                                  "broker as leader; kafka.server:type=ReplicaManager,"
                                  "name=IsrShrinksPerSec.", value=replicas.isr_shrinks)
        yield CounterMetricFamily("strom_isr_expands_total", "ISR expansions proposed by this "
                                  "broker as leader; kafka.server:type=ReplicaManager,"
                                  "name=IsrExpandsPerSec.", value=replicas.isr_expands)

    def _logs(self, services: BrokerServices) -> Iterator[Metric]:
        replicas = services.replicas
        labels = ["topic", "partition"]
        size = GaugeMetricFamily("strom_log_size_bytes", "Bytes of a partition's log "
                                 "segments; kafka.log:type=Log,name=Size.", labels=labels)
        segments = GaugeMetricFamily("strom_log_segments", "Segments of a partition's log; "
                                     "kafka.log:type=Log,name=NumLogSegments.", labels=labels)
        end = GaugeMetricFamily("strom_log_end_offset", "A partition's log end offset; "
                                "kafka.log:type=Log,name=LogEndOffset.", labels=labels)
        start = GaugeMetricFamily("strom_log_start_offset", "A partition's log start offset; "
                                  "kafka.log:type=Log,name=LogStartOffset.", labels=labels)
        for (topic, index), partition in sorted(replicas.partitions.items()):
            log = partition.log
            values = [topic, str(index)]
            size.add_metric(values, log.size_in_bytes)
            segments.add_metric(values, len(log.log_segments.segments))
            end.add_metric(values, log.log_end_offset)
            start.add_metric(values, log.log_start_offset)
        yield from (size, segments, end, start)
        yield histogram(
            "strom_log_flush_duration_seconds",
            "fdatasync of a partition log by the group-commit flusher (acks=all), from its "
            "start to its end as the event loop sees it; kafka.log:type=LogFlushStats,"
            "name=LogFlushRateAndTimeMs.", [], iter([([], replicas.flusher.fsync_seconds)]))
        yield CounterMetricFamily(
            "strom_log_flush_syncfs_rounds", "Group commits that flushed every waiting "
            "partition of a log directory with one syncfs (strom/broker/flusher.py).",
            value=replicas.flusher.syncfs_rounds)
        yield CounterMetricFamily(
            "strom_log_flush_syncfs_fallbacks", "syncfs rounds answered by one fdatasync "
            "per partition instead: the page cache was too dirty, or syncfs failed.",
            value=replicas.flusher.syncfs_fallbacks)

    def _fetch_sessions(self, services: BrokerServices) -> Iterator[Metric]:
        cache = services.fetch_sessions
        yield GaugeMetricFamily(
            "strom_fetch_sessions", "Incremental fetch sessions cached (KIP-227); "
            "kafka.server:type=FetchSessionCache,name=NumIncrementalFetchSessions.",
            value=len(cache.sessions))
        yield GaugeMetricFamily(
            "strom_fetch_session_partitions", "Partitions in cached fetch sessions; "
            "kafka.server:type=FetchSessionCache,name=NumIncrementalFetchPartitionsCached.",
            value=cache.partitions())
        yield CounterMetricFamily(
            "strom_fetch_session_evictions", "Fetch sessions evicted to make room for new "
            "ones; kafka.server:type=FetchSessionCache,"
            "name=IncrementalFetchSessionEvictionsPerSec.", value=cache.evictions)

    def _groups(self, services: BrokerServices) -> Iterator[Metric]:
        labels = ["group", "topic", "partition"]
        lag = GaugeMetricFamily(
            "strom_consumer_group_lag", "High watermark minus the group's committed offset, "
            "for partitions led by this broker, computed at scrape time by the group's "
            "coordinator; Kafka has no broker MBean (kafka-consumer-groups.sh --describe "
            "LAG; kafka_exporter's kafka_consumergroup_lag).", labels=labels)
        committed = GaugeMetricFamily(
            "strom_consumer_group_committed_offset", "A group's committed offset of a "
            "partition (kafka_exporter's kafka_consumergroup_current_offset).", labels=labels)
        groups = services.coordinators.started_groups
        partitions = services.replicas.partitions
        if groups is not None:
            for shard in groups.runtime.active_shards():
                store = shard.offset_store
                for group_id in store.group_ids():
                    for (topic, index), offset in store.group(group_id).items():
                        values = [group_id, topic, str(index)]
                        committed.add_metric(values, offset.offset)
                        partition = partitions.get((topic, index))
                        if partition is not None and partition.is_leader:
                            lag.add_metric(values,
                                           max(0, partition.high_watermark - offset.offset))
        yield lag
        yield committed

    def _transactions(self, services: BrokerServices) -> Iterator[Metric]:
        txn = services.coordinators.started_transactions
        commits = txn.completed_commits if txn is not None else 0
        aborts = txn.completed_aborts if txn is not None else 0
        family = CounterMetricFamily(
            "strom_transactions_completed_total", "Transactions this broker's transaction "
            "coordinator completed (markers written, COMPLETE_COMMIT/COMPLETE_ABORT durable), "
            "by result; no Kafka MBean (kafka.coordinator.transaction's "
            "transaction-coordinator-metrics count partitions and markers).",
            labels=["result"])
        family.add_metric(["commit"], commits)
        family.add_metric(["abort"], aborts)
        yield family
