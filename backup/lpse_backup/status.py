"""`lpse-backup status` (the status timer, every few minutes): the drive and the WAL archive,
between backup runs, written to status.prom."""

from __future__ import annotations

from lpse_backup import clock, metrics
from lpse_backup.drill import psql
from lpse_backup.errors import LpseBackupError
from lpse_backup.media import Ledger
from lpse_backup.settings import Settings
from lpse_backup.targets import Targets


def run_status(s: Settings) -> metrics.Status:
    label, free, size, due = "", 0, 0, False
    try:
        drive = Targets(s).drive()
        label, free, size = drive.label, drive.free_bytes, drive.size_bytes
        due = Ledger.load(s.state_dir / "drives.json").swap_due(label, clock.now(), s.rotate_days)
    except LpseBackupError:
        pass  # no drive (or a damaged ledger, which the nightly run reports): present 0 / not due
    row = psql(
        "SELECT coalesce(extract(epoch FROM last_archived_time), 0),"
        " coalesce(extract(epoch FROM last_failed_time), 0), failed_count,"
        " current_setting('archive_mode') <> 'off' FROM pg_stat_archiver",
        "postgres",
    ).split("|")
    ready_dir = s.pg_data / "pg_wal" / "archive_status"
    ready = sum(1 for _ in ready_dir.glob("*.ready")) if ready_dir.exists() else 0
    st = metrics.Status(label, free, size, due, float(row[0]), float(row[1]), int(row[2]), ready, row[3] == "t")
    metrics.write_status(s.textfile_dir / "status.prom", st)
    return st
