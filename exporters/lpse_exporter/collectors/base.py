"""Shared plumbing: run each source once per scrape and report its success and duration.

The sources are read one after another and their success/duration go into one metric family
each, so the exposition has no duplicate families and a broken source never breaks the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("lpse_exporter")


class Source(Protocol):
    """One source of metrics (/proc/meminfo, the SPSE probe…); read() takes one snapshot."""

    name: str

    def read(self) -> Iterable[Metric]: ...


class LpseCollector(Collector):
    def __init__(self, sources: Sequence[Source]) -> None:
        self.sources = list(sources)

    def collect(self) -> Iterator[Metric]:
        success = GaugeMetricFamily(
            "lpse_exporter_collector_success", "1 if the collector read its source on this scrape", labels=["collector"]
        )
        duration = GaugeMetricFamily(
            "lpse_exporter_collector_duration_seconds", "Time the collector took on this scrape", labels=["collector"]
        )
        for source in self.sources:
            t0 = time.perf_counter()
            try:
                metrics = list(source.read())  # all or nothing: never half a snapshot
                ok = 1.0
            except Exception:
                log.exception("collector %s failed", source.name)
                metrics, ok = [], 0.0
            yield from metrics
            success.add_metric([source.name], ok)
            duration.add_metric([source.name], time.perf_counter() - t0)
        yield success
        yield duration


def read_text(path: Path) -> str:
    return path.read_text(encoding="ascii", errors="replace")
