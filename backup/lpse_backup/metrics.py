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
    dataset: str  # database, dump, documents, system
    target: str  # s3, local, portable
    success: bool
    finished: float  # epoch seconds
    duration_s: float
    bytes: int = 0
    # The check of the copy just made (pgbackrest verify, restic check, a dump read back);
    # None: not checked this time (reported as "not verified", never as ok).
    verified: bool | None = None
    verify_s: float = 0.0
    # A copy that is not fresh (made from a repository whose backup failed tonight): the time of
    # the newest backup it holds, which is its age.
    as_of: float | None = None
    # A drill of a target that is not here (the drive at the safe): neither passed nor failed.
    skipped: bool = False


def previous_successes(path: Path, name: str = SUCCESS) -> dict[tuple[str, str], float]:
    """Last success times from the file a previous run wrote (none if it is absent or garbled)."""
    if not path.exists():
        return {}
    pattern = re.compile(re.escape(name) + r'\{dataset="([^"]+)",target="([^"]+)"\} (\S+)')
    return {(m[1], m[2]): float(m[3]) for m in pattern.finditer(path.read_text())}


def _write_results(path: Path, results: list[Result], prefix: str, what: str, with_bytes: bool) -> None:
    """Per dataset/target: last success time and last verified time (each kept from the previous
    file when this run did not renew it), last result, duration (and bytes), or that it was
    skipped. The file appears whole or not at all (temp file + rename)."""
    success = f"{prefix}_last_success_timestamp_seconds"
    checked = f"{prefix}_last_verified_timestamp_seconds"
    last_ok = previous_successes(path, success)
    last_checked = previous_successes(path, checked)
    reg = CollectorRegistry()
    labels = ["dataset", "target"]
    ok = Gauge(success, f"When the last {what} of the dataset from/to the target succeeded", labels, registry=reg)
    run_ok = Gauge(f"{prefix}_last_run_success", f"1 if the last {what} succeeded", labels, registry=reg)
    duration = Gauge(f"{prefix}_last_run_duration_seconds", f"Duration of the last {what}", labels, registry=reg)
    size = Gauge(f"{prefix}_last_run_bytes", f"Bytes the last {what} stored", labels, registry=reg)
    verified = Gauge(f"{prefix}_last_verify_success", "1 if the copy passed its check", labels, registry=reg)
    verify_s = Gauge(f"{prefix}_last_verify_duration_seconds", "Duration of the check", labels, registry=reg)
    verified_at = Gauge(checked, f"When the copy last passed its check ({what})", labels, registry=reg)
    skipped = Gauge(
        f"{prefix}_last_run_skipped", f"1 if the last {what} was skipped (target absent)", labels, registry=reg
    )
    for r in results:
        key = (r.dataset, r.target)
        if r.skipped:
            skipped.labels(*key).set(1)
            continue
        if r.success:
            last_ok[key] = r.as_of if r.as_of is not None else r.finished
        if r.success and r.verified:
            last_checked[key] = r.finished
        run_ok.labels(*key).set(1 if r.success else 0)
        duration.labels(*key).set(r.duration_s)
        if with_bytes:
            size.labels(*key).set(r.bytes)
        if r.verified is not None:
            verified.labels(*key).set(1 if r.verified else 0)
            verify_s.labels(*key).set(r.verify_s)
    for key, when in last_ok.items():
        ok.labels(*key).set(when)
    for key, when in last_checked.items():
        verified_at.labels(*key).set(when)
    write_to_textfile(str(path), reg)


def write(path: Path, results: list[Result]) -> None:
    """The backup run's results (`backup.prom`), with the check of each copy."""
    _write_results(path, results, "lpse_backup", "backup", with_bytes=True)


def write_drill(path: Path, results: list[Result]) -> None:
    """The restore drill's results (`drill.prom`); the duration of a database part is that target's RTO."""
    _write_results(path, results, "lpse_backup_drill", "restore drill", with_bytes=False)


@dataclass(frozen=True)
class DriveStatus:
    label: str = ""  # "" when no rota drive is plugged in
    free_bytes: int = 0
    size_bytes: int = 0
    swap_due: bool = False


@dataclass(frozen=True)
class WalStatus:
    last_archived: float  # epoch seconds, 0 if never
    last_failed: float
    failed_count: int
    ready_segments: int  # segments waiting to be archived
    archiving: bool = True  # archive_mode is on (off after a restore, until site.yml)


@dataclass(frozen=True)
class Status:
    """What the status timer sees every few minutes, between backup runs; `wal` is None when
    PostgreSQL could not be asked (its series are then absent: BackupStatusMissing)."""

    drive: DriveStatus
    wal: WalStatus | None


def write_status(path: Path, s: Status) -> None:
    reg = CollectorRegistry()
    d = s.drive
    present = Gauge(
        "lpse_backup_portable_media_present", "1 if a drive of the rota is plugged in", ["label"], registry=reg
    )
    present.labels(d.label).set(1 if d.label else 0)
    if d.label:
        drive: tuple[tuple[str, str, float], ...] = (
            ("free_bytes", "Free space on the drive", d.free_bytes),
            ("size_bytes", "Size of the drive", d.size_bytes),
            ("swap_due", "1 when the drive should go to the safe", 1 if d.swap_due else 0),
        )
        for name, what, value in drive:
            Gauge(f"lpse_backup_portable_media_{name}", what, ["label"], registry=reg).labels(d.label).set(value)
    if s.wal is not None:
        w = s.wal
        wal: tuple[tuple[str, str, float], ...] = (
            ("last_archived_timestamp_seconds", "When PostgreSQL last archived a WAL segment", w.last_archived),
            ("last_failed_timestamp_seconds", "When archiving a WAL segment last failed", w.last_failed),
            ("archive_failures", "Failed WAL archive attempts since the statistics reset", w.failed_count),
            ("archiving_enabled", "1 if PostgreSQL archives WAL (archive_mode on)", 1 if w.archiving else 0),
            ("ready_segments", "WAL segments waiting to be archived (the archive lag)", w.ready_segments),
        )
        for name, what, value in wal:
            Gauge(f"lpse_backup_wal_{name}", what, registry=reg).set(value)
    write_to_textfile(str(path), reg)
