"""A Prometheus of a test's own scraping the example app's containers (tests/prometheus_process.py), so a test can
ask the exact PromQL an analysis asks of what its containers serve."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tests.prometheus_process import Prometheus, free_port, job, started

__all__ = ["Prometheus", "free_port", "scraping"]


@contextmanager
def scraping(home: Path, label: str, targets: Mapping[str, int]) -> Iterator[Prometheus]:
    """Prometheus scraping 127.0.0.1:<port> every second for each {value: port}, with `label`=value; stopped
    on exit. Ready when every target is up."""
    with started(home, [job("targets", [([port], {label: value}) for value, port in targets.items()])],
                 scrape_timeout="800ms") as prom:
        prom.wait_for("up == 1", lambda r: len(r) == len(targets), 30)
        yield prom
