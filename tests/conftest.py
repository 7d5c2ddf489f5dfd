"""Shared fixtures: a real strom broker over real sockets."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from strom.testing import EmbeddedBroker

_topic_counter = itertools.count()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One in-process broker shared by the session; tests use their own topics."""
    data_dir = tmp_path_factory.mktemp("strom-data")
    with EmbeddedBroker(data_dir, overrides={"num.partitions": "1",
                                             "auto.create.topics.enable": "true"}) as b:
        yield b


@pytest.fixture
def fresh_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of the test's own, for tests that change broker-wide state."""
    with EmbeddedBroker(tmp_path / "data") as b:
        yield b


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> str:
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:150]
    return f"t-{base}-{os.getpid()}-{next(_topic_counter)}"
