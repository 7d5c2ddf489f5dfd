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
