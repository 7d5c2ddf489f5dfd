"""Scraping a broker's /metrics in tests: samples by name and labels."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    def __init__(self, text: str) -> None:
        self.text = text
        #: Family names (as the # TYPE lines give them) and their types.
        self.types: dict[str, str] = {}
        self.samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                self.samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 when the series does not exist (yet)."""
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def names(self) -> set[str]:
        """Every metric name a query may use: families and their samples."""
        return set(self.types) | {name for name, _ in self.samples}


def get(url: str, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(base: str) -> Scrape:
    status, text = get(base + "/metrics")
    assert status == 200, text
    return Scrape(text)


def wait_for(base: str, check: Callable[[Scrape], bool], timeout: float = 20) -> Scrape:
    """Scrape until `check` holds (metrics computed at scrape time follow the
    broker's state, which moves after the client's call returns)."""
    deadline = time.monotonic() + timeout
    while True:
        result = scrape(base)
        if check(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"metrics never matched; last scrape:\n{result.text[-3000:]}")
        time.sleep(0.1)  # polling an HTTP endpoint: no event to wait on
