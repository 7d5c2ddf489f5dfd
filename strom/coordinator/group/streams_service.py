"""Streams groups (KIP-1071) as the broker's handlers see them: heartbeat and describe
routed to the group's `__consumer_offsets` partition; errors as Kafka answers them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strom.coordinator.group.streams_protocol import HeartbeatOutcome
from strom.coordinator.group.streams_validation import StreamsHeartbeat, validate
from strom.errors import ErrorCode, KafkaError

if TYPE_CHECKING:
    from strom.coordinator.group.service import GroupCoordinator


def error_response(code: int, message: str | None) -> dict[str, Any]:
    return {"throttle_time": 0, "error_code": code, "error_message": message,
            "member_id": "", "member_epoch": 0, "heartbeat_interval": 0,
            "acceptable_recovery_lag": 0, "task_offset_interval": 0, "status": None,
            "active_tasks": None, "standby_tasks": None, "warmup_tasks": None,
            "endpoint_information_epoch": 0, "partitions_by_user_endpoint": None}


class StreamsGroupService:
    def __init__(self, coordinator: GroupCoordinator) -> None:
        self._coordinator = coordinator

    async def heartbeat(self, request: StreamsHeartbeat,
                        task_lists_present: tuple[bool, bool, bool]) -> HeartbeatOutcome:
        from strom.coordinator.group.service import _coordinator_error

        runtime = self._coordinator.runtime
        try:
            validate(request, task_lists_present)
            return await runtime.write(self._coordinator.partition_for(request.group_id),
                                       lambda shard: shard.streams.heartbeat(request))
        except Exception as exc:
            message = exc.message if isinstance(exc, KafkaError) else None
            return HeartbeatOutcome(error_response(_coordinator_error(exc), message))

    async def describe(self, group_ids: list[str]) -> list[dict[str, Any]]:
        def failed(group_id: str, code: ErrorCode, message: str | None) -> dict[str, Any]:
            return {"error_code": code, "error_message": message, "group_id": group_id,
                    "group_state": "", "group_epoch": -1, "assignment_epoch": -1,
                    "topology": None, "members": []}

        return self._coordinator.describe_each(
            group_ids, lambda shard, group_id: shard.streams.describe(group_id), failed)
