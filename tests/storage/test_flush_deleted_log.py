"""A flush racing the deletion of its log is no disk failure (issue 13 follow-up,
found by the fuzzer: a DeleteTopics of __consumer_offsets during a flush logged
"cannot flush .../leader-epoch-checkpoint: No such file or directory; writes to
this file system fail with KAFKA_STORAGE_ERROR")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from storage_helpers import append, open_log

from strom.errors import KafkaStorageError
from strom.storage import disk


@pytest.fixture
def no_disk_condition(tmp_path: Path) -> Iterator[None]:
    assert not disk.failing()
    yield
    disk.clear(tmp_path)  # process-wide state: never leak a condition to other tests


def test_flush_of_a_deleted_log_is_no_disk_failure(tmp_path: Path,
                                                   no_disk_condition: None) -> None:
    deleted = open_log(tmp_path / "__consumer_offsets-0")
    append(deleted, epoch=3)  # a new leader epoch: the ticket writes the epoch checkpoint
    ticket = deleted.prepare_flush()
    # The owner thread deletes the log (DeleteTopics) before the worker runs the ticket.
    deleted.delete()
    with pytest.raises(KafkaStorageError, match="deleted"):
        ticket.run()
    deleted.complete_flush(ticket)
    assert not disk.failing()

    other = open_log(tmp_path / "t-0")
    append(other, epoch=1)
    other.flush()
    assert other.recovery_point == 1
    other.close()
