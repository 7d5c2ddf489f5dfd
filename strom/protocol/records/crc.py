"""CRC-32C (Castagnoli): the checksum of Kafka's record batches and of strom's
own snapshot files, from the `crc32c` package's C extension.

`import crc32c` runs the package's __init__, which imports importlib.metadata
(and with it email, zipfile and csv) only to set `crc32c.__version__`: 10-15 ms
of every broker's start-up and 3.3 MiB of its idle RSS, for one function. The
extension module is loaded here without it, from the package's directory, as
the package itself would load it; should the package be laid out otherwise,
the ordinary import is used.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from collections.abc import Callable
from typing import cast

_EXTENSION = "crc32c._crc32c"

#: crc32c(data) -> int: the CRC-32C of a buffer.
Crc32c = Callable[[bytes | bytearray | memoryview], int]


def _load() -> Crc32c:
    package = importlib.util.find_spec("crc32c")  # locates it; runs nothing
    for directory in (package.submodule_search_locations or []) if package else []:
        finder = importlib.machinery.FileFinder(directory, (
            importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES))
        spec = finder.find_spec(_EXTENSION)
        if spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            function = getattr(module, "crc32c", None)
            if callable(function):
                return cast(Crc32c, function)
    from crc32c import crc32c as packaged

    return packaged


crc32c: Crc32c = _load()
