"""The backup job's metrics, written atomically as a textfile for lpse-exporter.

One file per job (`backup.prom`); the exporter's textfile collector serves it. Names and labels
are the contract with the alert rules (roles/prometheus, group lpse-backup):
lpse_backup_last_success_timestamp_seconds{dataset,target}, lpse_backup_last_run_success{...}.
A run keeps the last success time of a dataset/target that failed this time, so that
BackupStale measures the age of the last good copy, not of the last attempt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

SUCCESS = "lpse_backup_last_success_timestamp_seconds"


@dataclass(frozen=True)
class Result:
    dataset: str  # database, documents, config
    target: str  # portable, s3
    success: bool
    finished: float  # epoch seconds
    duration_s: float
    bytes: int


def previous_successes(path: Path) -> dict[tuple[str, str], float]:
    """Last success times from the file a previous run wrote (none if it is absent or garbled)."""
    out: dict[tuple[str, str], float] = {}
    if not path.exists():
        return out
    pattern = re.compile(SUCCESS + r'\{dataset="([^"]+)",target="([^"]+)"\} (\S+)')
    for m in pattern.finditer(path.read_text()):
        out[(m[1], m[2])] = float(m[3])
    return out


def write(path: Path, results: list[Result]) -> None:
    """Write the run's results; the file appears whole or not at all (temp file + rename)."""
    last_ok = previous_successes(path)
    reg = CollectorRegistry()
    labels = ["dataset", "target"]
    ok = Gauge(SUCCESS, "When the dataset was last backed up to the target successfully", labels, registry=reg)
    run_ok = Gauge("lpse_backup_last_run_success", "1 if the last run succeeded", labels, registry=reg)
    duration = Gauge("lpse_backup_last_run_duration_seconds", "Duration of the last run", labels, registry=reg)
    size = Gauge("lpse_backup_last_run_bytes", "Bytes the last run stored", labels, registry=reg)
    for r in results:
        key = (r.dataset, r.target)
        if r.success:
            last_ok[key] = r.finished
        run_ok.labels(*key).set(1 if r.success else 0)
        duration.labels(*key).set(r.duration_s)
        size.labels(*key).set(r.bytes)
    for key, when in last_ok.items():
        ok.labels(*key).set(when)
    write_to_textfile(str(path), reg)
