"""What a partition answers its callers: an append as leader, a consumer's
fetch, a follower's fetch. Values only; `Partition` makes them."""

from __future__ import annotations

from dataclasses import dataclass

from strom.storage.log import AppendInfo


# Not frozen: a frozen dataclass's __init__ sets each field through
# object.__setattr__, ~0.07 us a field; made once per request or more (issue 19).
@dataclass(slots=True)
class LeaderAppend:
    info: AppendInfo
    log_append_time: int  # -1 unless the topic uses LogAppendTime


@dataclass(slots=True)
class PartitionFetch:
    """What a Fetch answers for one partition."""

    # Whole batches as stored, in chunks (views of mapped segment files or bytes).
    records: list[bytes | memoryview]
    size: int
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int
    # read_committed only (KIP-98): the aborted transactions overlapping the read.
    aborted_transactions: list[dict[str, int]] | None


@dataclass(frozen=True, slots=True)
class FollowerFetch:
    """What a Fetch from a follower answers for one partition: records up to
    the log end offset, or where the follower's log diverges from this one."""

    records: list[bytes | memoryview]
    size: int
    high_watermark: int
    log_start_offset: int
    #: (epoch, end offset) of the largest epoch this log has at or below the
    #: follower's last fetched epoch, when the follower's log diverges from it.
    diverging_epoch: tuple[int, int] | None
