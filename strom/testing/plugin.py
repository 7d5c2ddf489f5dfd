"""pytest plugin: `strom_broker`, a fresh embedded broker per test.

Installed with strom (entry point `pytest11`), so any project that depends on
strom gets the fixture:

    def test_orders(strom_broker):
        producer = Producer({"bootstrap.servers": strom_broker.bootstrap})
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from strom.testing import EmbeddedBroker


@pytest.fixture
def strom_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker on a free port with data in the test's temporary directory."""
    # Imported here so that merely having strom installed costs pytest nothing.
    from strom.testing import EmbeddedBroker

    with EmbeddedBroker(tmp_path / "strom-data") as broker:
        yield broker
