"""`lpse-backup status` (the status timer, every few minutes): the drive and the WAL archive,
between backup runs, written to status.prom. Each is read as a step of its own: PostgreSQL down
or a damaged drive ledger is said, and what could be read is still written."""

from __future__ import annotations

from collections.abc import Callable

from lpse_backup import clock, metrics
from lpse_backup.database import psql
from lpse_backup.errors import MediaError
from lpse_backup.media import Ledger
from lpse_backup.settings import Settings
from lpse_backup.steps import Steps
from lpse_backup.targets import Targets


def run_status(s: Settings, out: Callable[[str], None] = print) -> tuple[metrics.Status, bool]:
    """What was read, and whether every reading worked."""
    steps = Steps(out)
    drive = metrics.DriveStatus()
    wal: metrics.WalStatus | None = None

    def read_drive() -> None:
        nonlocal drive
        try:
            d = Targets(s).drive()
        except MediaError:
            return  # no drive plugged in (or a foreign one): present 0, which is no error
        drive = metrics.DriveStatus(d.label, d.free_bytes, d.size_bytes)
        due = Ledger.load(s.state_dir / "drives.json").swap_due(d.label, clock.now(), s.rotate_days)
        drive = metrics.DriveStatus(d.label, d.free_bytes, d.size_bytes, due)

    def read_wal() -> None:
        nonlocal wal
        row = psql(
            "SELECT coalesce(extract(epoch FROM last_archived_time), 0),"
            " coalesce(extract(epoch FROM last_failed_time), 0), failed_count,"
            " current_setting('archive_mode') <> 'off' FROM pg_stat_archiver",
            "postgres",
        ).split("|")
        ready_dir = s.pg_data / "pg_wal" / "archive_status"
        ready = sum(1 for _ in ready_dir.glob("*.ready")) if ready_dir.exists() else 0
        wal = metrics.WalStatus(float(row[0]), float(row[1]), int(row[2]), ready, row[3] == "t")

    ok = steps.chore("portable drive", read_drive)
    ok = steps.chore("WAL archive (PostgreSQL's pg_stat_archiver)", read_wal) and ok
    st = metrics.Status(drive, wal)
    metrics.write_status(s.textfile_dir / "status.prom", st)
    return st, ok
