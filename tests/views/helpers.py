"""Events and small helpers shared by the view tests."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any

from strom.views import EventRegistry, Publisher, ensure_topic

_names = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{next(_names)}"


@dataclass(frozen=True)
class Deposited:
    account: str
    amount: int
    n: int


@dataclass(frozen=True)
class Noted:
    text: str


def registry() -> EventRegistry:
    reg = EventRegistry()
    reg.register(Deposited, version=1)
    reg.register(Noted, version=1)
    return reg


def create_topic(bootstrap: str, name: str, partitions: int = 3,
                 config: dict[str, str] | None = None) -> str:
    ensure_topic(bootstrap, name, partitions=partitions, config=config)
    return name


def publish_deposits(publisher: Publisher, topic: str, start: int, count: int,
                     accounts: int = 7) -> None:
    futures: list[Any] = []
    for n in range(start, start + count):
        account = f"acct-{n % accounts}"
        futures.append(publisher.publish_async(topic, Deposited(account, n, n), key=account))
    for f in futures:
        f.result(30)
