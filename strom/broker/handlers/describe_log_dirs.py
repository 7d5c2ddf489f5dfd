"""DescribeLogDirs: each data directory with the partitions it holds.

Versions: 1-5. One result per configured log dir, by absolute path, listing
the requested partitions (null topics: all) with their size in bytes,
offset_lag (the high watermark minus the log end offset, never below 0) and
is_future_key false (strom has no AlterReplicaLogDirs moves). Topics with
no requested partition in a directory are left out, as in Kafka. From v4 the
volume's total and usable bytes; a directory that cannot be read reports
KAFKA_STORAGE_ERROR. v5's is_cordoned is false (KIP-1066 is not supported).
"""

from __future__ import annotations

import os
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

from strom.broker.authorization import cluster_allowed
from strom.broker.context import RequestContext
from strom.broker.partition import Partition
from strom.broker.router import handles
from strom.errors import ErrorCode
from strom.protocol.api import ApiKey
from strom.security.acl_types import AclOperation


def _absolute(path: Path) -> str:
    return os.path.abspath(path)


def _requested(request: Any) -> set[tuple[str, int]] | None:
    if request.topics is None:
        return None
    return {(t.topic, p) for t in request.topics for p in t.partitions}


def _partition(index: int, partition: Partition) -> dict[str, Any]:
    log = partition.log
    return {"partition_index": index, "partition_size": log.size_in_bytes,
            "offset_lag": max(partition.high_watermark - log.log_end_offset, 0),
            "is_future_key": False}


@handles(ApiKey.DESCRIBE_LOG_DIRS)
async def handle(ctx: RequestContext, request: Any) -> dict[str, Any]:
    if not cluster_allowed(ctx, AclOperation.DESCRIBE):
        return {"throttle_time": 0, "error_code": ErrorCode.cluster_authorization_failed,
                "results": []}
    wanted = _requested(request)
    by_dir: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for (topic, index), partition in sorted(ctx.broker.replicas.partitions.items()):
        if wanted is not None and (topic, index) not in wanted:
            continue
        by_dir[_absolute(partition.log.directory.parent)][topic].append(
            _partition(index, partition))
    results = []
    for log_dir in dict.fromkeys(_absolute(d) for d in ctx.broker.config.log_dirs):
        result: dict[str, Any] = {"error_code": ErrorCode.none, "log_dir": log_dir,
                                  "topics": [], "total_bytes": -1, "usable_bytes": -1,
                                  "is_cordoned": False}
        try:
            usage = shutil.disk_usage(log_dir)
        except OSError:
            result["error_code"] = ErrorCode.kafka_storage_error
            results.append(result)
            continue
        result.update(
            total_bytes=usage.total, usable_bytes=usage.free,
            topics=[{"name": topic, "partitions": partitions}
                    for topic, partitions in by_dir.get(log_dir, {}).items()],
        )
        results.append(result)
    return {"throttle_time": 0, "error_code": ErrorCode.none, "results": results}
