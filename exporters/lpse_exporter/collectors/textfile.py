"""*.prom files written atomically by batch jobs (the backup job), served as they are.

A malformed file is left out and reported by lpse_textfile_error{file="…"} = 1; it never
turns the scrape into an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from lpse_exporter.collectors.base import log


class TextfileSource:
    name = "textfile"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def read(self) -> Iterable[Metric]:
        error = GaugeMetricFamily("lpse_textfile_error", "1 if the textfile could not be parsed", labels=["file"])
        mtime = GaugeMetricFamily("lpse_textfile_mtime_seconds", "When the textfile was last written", labels=["file"])
        served: dict[str, Metric] = {}
        for path in sorted(self.directory.glob("*.prom")) if self.directory.is_dir() else []:
            try:
                st = path.stat()
                families = list(text_string_to_metric_families(path.read_text(encoding="utf-8")))
                clash = [f.name for f in families if f.name in served or f.name.startswith("lpse_textfile_")]
                if clash:
                    raise ValueError(f"metric {clash[0]} also comes from another file")
            except (OSError, ValueError, UnicodeDecodeError) as e:
                log.warning("textfile %s rejected: %s", path, e)
                error.add_metric([path.name], 1.0)
                continue
            for f in families:
                served[f.name] = f
            error.add_metric([path.name], 0.0)
            mtime.add_metric([path.name], st.st_mtime)
        return [*served.values(), error, mtime]
