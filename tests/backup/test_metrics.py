"""The backup textfile: what the alert rules read, kept across a failed run."""

from __future__ import annotations

from pathlib import Path

from lpse_backup.metrics import Result, write
from prometheus_client.parser import text_string_to_metric_families


def samples(path: Path) -> dict[tuple[str, str, str], float]:
    out = {}
    for fam in text_string_to_metric_families(path.read_text()):
        for s in fam.samples:
            out[(s.name, s.labels["dataset"], s.labels["target"])] = s.value
    return out


def test_a_failed_run_keeps_the_time_of_the_last_good_copy(tmp_path: Path) -> None:
    prom = tmp_path / "backup.prom"
    write(
        prom, [Result("documents", "portable", True, 1000.0, 12.5, 4096), Result("database", "s3", True, 1001.0, 3, 10)]
    )
    write(prom, [Result("documents", "portable", False, 2000.0, 1.0, 0), Result("database", "s3", True, 2001.0, 3, 10)])
    got = samples(prom)
    assert got[("lpse_backup_last_success_timestamp_seconds", "documents", "portable")] == 1000.0
    assert got[("lpse_backup_last_run_success", "documents", "portable")] == 0.0
    assert got[("lpse_backup_last_success_timestamp_seconds", "database", "s3")] == 2001.0
    assert got[("lpse_backup_last_run_success", "database", "s3")] == 1.0
    assert got[("lpse_backup_last_run_bytes", "database", "s3")] == 10
    assert not list(tmp_path.glob("*.tmp*")), "a temporary file was left behind"
