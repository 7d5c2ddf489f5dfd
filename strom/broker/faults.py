"""Fault injection at the wire, for tests (strom.testing).

A fault applies to the next N requests of one API, in arrival order across
all connections: answer with an error code instead of running the handler,
delay the response, drop it (the client times out), close the connection
instead of handling the request, or handle it and then close instead of
answering (the response is lost after the effect happened).
An injected error never runs the handler, so it has no side effects (an
injected produce error writes nothing), exactly as a client would see a
broker that failed the request.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from strom.errors import ErrorCode
from strom.protocol.api import ApiKey


class FaultAction(enum.Enum):
    ERROR = "error"
    DELAY = "delay"
    DROP = "drop"
    CLOSE = "close"
    # Handle the request, then close instead of answering: the client cannot
    # tell whether it took effect (what idempotence and transactions are for).
    CLOSE_AFTER = "close_after"


@dataclass(slots=True)
class Fault:
    api_key: ApiKey
    action: FaultAction
    remaining: int
    error_code: ErrorCode = ErrorCode.none
    delay_s: float = 0.0


class FaultInjector:
    """Rules consulted by every connection; safe to change from a test's thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        if fault.action is FaultAction.ERROR and fault.api_key not in ERROR_RESPONSES:
            raise ValueError(
                f"error injection is not supported for {fault.api_key.name}; "
                "use delay, drop or close"
            )
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, api_key: int) -> Fault | None:
        """The fault for this request, if any, counting it down."""
        if not self._faults:  # the common case, without taking the lock
            return None
        with self._lock:
            for fault in self._faults:
                if fault.api_key == api_key and fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None


# --- error responses: the request mirrored, every error field set ----------------


def _topics(request: Any, attr: str, partitions_attr: str,
            partition: Callable[[Any, ErrorCode], dict[str, Any]],
            code: ErrorCode) -> list[dict[str, Any]]:
    return [
        {"name": getattr(t, "name", None) or getattr(t, "topic", None),
         "topic": getattr(t, "topic", None) or getattr(t, "name", None),
         "topic_id": getattr(t, "topic_id", None),
         partitions_attr: [partition(p, code) for p in getattr(t, attr)]}
        for t in request_topics(request)
    ]


def request_topics(request: Any) -> Any:
    for name in ("topic_data", "topics"):
        if hasattr(request, name):
            return getattr(request, name) or ()
    return ()


def _produce(request: Any, code: ErrorCode) -> dict[str, Any]:
    return {"throttle_time": 0, "responses": _topics(
        request, "partition_data", "partition_responses",
        lambda p, c: {"index": p.index, "error_code": c, "base_offset": -1,
                      "log_append_time": -1, "log_start_offset": -1, "record_errors": [],
                      "error_message": None}, code)}


def _fetch(request: Any, code: ErrorCode) -> dict[str, Any]:
    return {"throttle_time": 0, "error_code": ErrorCode.none, "session_id": 0,
            "responses": _topics(
                request, "partitions", "partitions",
                lambda p, c: {"partition_index": p.partition, "error_code": c,
                              "high_watermark": -1, "last_stable_offset": -1,
                              "log_start_offset": -1, "aborted_transactions": None,
                              "preferred_read_replica": -1, "records": b""}, code)}


def _list_offsets(request: Any, code: ErrorCode) -> dict[str, Any]:
    return {"throttle_time": 0, "topics": _topics(
        request, "partitions", "partitions",
        lambda p, c: {"partition_index": p.partition_index, "error_code": c,
                      "timestamp": -1, "offset": -1, "leader_epoch": -1}, code)}


def _top_level(**fields: Any) -> Callable[[Any, ErrorCode], dict[str, Any]]:
    def build(request: Any, code: ErrorCode) -> dict[str, Any]:
        return {"throttle_time": 0, "error_code": code, **fields}
    return build


ERROR_RESPONSES: dict[ApiKey, Callable[[Any, ErrorCode], dict[str, Any]]] = {
    ApiKey.PRODUCE: _produce,
    ApiKey.FETCH: _fetch,
    ApiKey.LIST_OFFSETS: _list_offsets,
    ApiKey.INIT_PRODUCER_ID: _top_level(producer_id=-1, producer_epoch=-1),
    ApiKey.HEARTBEAT: _top_level(),
    ApiKey.SYNC_GROUP: _top_level(protocol_type=None, protocol_name=None, assignment=b""),
    ApiKey.JOIN_GROUP: _top_level(generation_id=-1, protocol_type=None, protocol_name=None,
                                  leader="", skip_assignment=False, member_id="",
                                  members=[]),
    ApiKey.LEAVE_GROUP: _top_level(members=[]),
    ApiKey.FIND_COORDINATOR: lambda request, code: {
        "throttle_time": 0, "error_code": code, "error_message": None, "node_id": -1,
        "host": "", "port": -1,
        "coordinators": [{"key": key, "node_id": -1, "host": "", "port": -1,
                          "error_code": code, "error_message": None}
                         for key in getattr(request, "coordinator_keys", ())],
    },
}


def error_response(api_key: ApiKey, request: Any, code: ErrorCode) -> dict[str, Any]:
    return ERROR_RESPONSES[api_key](request, code)
