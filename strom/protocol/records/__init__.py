"""Record batches, magic v2: header layout, CRC32C, records, compression,
control records, validation of produced batches, and a builder.

Sans-I/O: bytes in, typed values out. Errors are strom.errors exceptions
carrying Kafka error codes.
"""

from strom.protocol.records.batch import (
    BATCH_HEADER_SIZE,
    LOG_OVERHEAD,
    NO_PRODUCER_ID,
    NO_SEQUENCE,
    NO_TIMESTAMP,
    BatchHeader,
    Buffer,
    Compression,
    TimestampType,
    assign_offsets,
    batch_crc_ok,
    read_batch_header,
    scan_batches,
    set_log_append_time,
    set_max_timestamp,
)
from strom.protocol.records.builder import (
    ControlRecordType,
    RecordSpec,
    build_batch,
    build_control_batch,
    decode_end_transaction_marker,
)
from strom.protocol.records.compression import compress, decompress
from strom.protocol.records.record import Record, decode_records, iter_batches_records
from strom.protocol.records.validate import (
    RecordError,
    RecordValidationError,
    TimestampValidationError,
    ValidatedBatch,
    validate_produced_batch,
)

__all__ = [
    "BATCH_HEADER_SIZE",
    "LOG_OVERHEAD",
    "NO_PRODUCER_ID",
    "NO_SEQUENCE",
    "NO_TIMESTAMP",
    "BatchHeader",
    "Buffer",
    "Compression",
    "ControlRecordType",
    "Record",
    "RecordError",
    "RecordSpec",
    "RecordValidationError",
    "TimestampType",
    "TimestampValidationError",
    "ValidatedBatch",
    "assign_offsets",
    "batch_crc_ok",
    "build_batch",
    "build_control_batch",
    "compress",
    "decode_end_transaction_marker",
    "decode_records",
    "decompress",
    "iter_batches_records",
    "read_batch_header",
    "scan_batches",
    "set_log_append_time",
    "set_max_timestamp",
    "validate_produced_batch",
]
