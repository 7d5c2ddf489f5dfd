from collections.abc import Callable

from strom.protocol.fast.produce import (
    PartitionProduceData,
    ProduceRequest,
    TopicProduceData,
)
from strom.protocol.headers import RequestHeader

def setup_header(cls: type[RequestHeader], /) -> None: ...
def setup_produce(request: type[ProduceRequest], topic: type[TopicProduceData],
                  partition: type[PartitionProduceData],
                  uuid_from_bytes: Callable[[bytes], object], /) -> None: ...
def parse_request_header(frame: bytes | bytearray | memoryview, header_version: int,
                         /) -> tuple[RequestHeader, int] | None: ...
def parse_produce_request(version: int, frame: bytes | bytearray | memoryview,
                          offset: int, /) -> ProduceRequest | None: ...
