from collections.abc import Callable

from strom.protocol.records.batch import BatchHeader

def walk_records(
    data: bytes | memoryview,
    count: int,
    base_timestamp: int,
    compacted: bool,
    check_create_time: bool,
    earliest: int,
    latest: int,
    /,
) -> tuple[int, int] | None: ...
def check_produced_batch(
    buf: memoryview,
    max_message_bytes: int,
    compacted: bool,
    check_create_time: bool,
    earliest: int,
    latest: int,
    /,
) -> tuple[BatchHeader, int, int] | None: ...
def setup(batch_header: type[BatchHeader], crc32c: Callable[[memoryview], int], /) -> None: ...
