"""strom.protocol.records.crc: the crc32c package's C function, loaded without the
package's __init__ (which imports importlib.metadata for its version)."""

from __future__ import annotations

import os
import subprocess
import sys

import crc32c as package

from strom.protocol.records.crc import crc32c


def test_same_checksums_as_the_package() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # RFC 3720's check value
    for size in (0, 1, 7, 8, 63, 64, 4096, 100_003):
        data = os.urandom(size)
        assert crc32c(data) == package.crc32c(data)
        assert crc32c(bytearray(data)) == package.crc32c(data)
        assert crc32c(memoryview(data)[1:]) == package.crc32c(data[1:])


def test_loads_neither_the_package_nor_importlib_metadata() -> None:
    # As deployed: kio loads hypothesis (a test tool, which imports
    # importlib.metadata) whenever it is installed.
    script = ("import sys\n"
              "sys.modules['hypothesis'] = None\n"
              "from strom.protocol.records.crc import crc32c\n"
              "assert crc32c(b'123456789') == 0xE3069283\n"
              "print(' '.join(m for m in ('crc32c', 'importlib.metadata') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == ""
