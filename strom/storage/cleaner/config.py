"""A cleaner thread's settings: its own module so the broker can read them at
start without importing the cleaning code (the package's docstring says why)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CleanerConfig:
    """Kafka's log.cleaner.* settings, per cleaner thread."""

    dedupe_buffer_bytes: int = 128 * 1024 * 1024
    io_buffer_bytes: int = 512 * 1024
    load_factor: float = 0.9
    max_io_bytes_per_second: float = float("inf")
