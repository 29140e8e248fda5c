"""Restore drills: proof, on a schedule, that the backups restore.

A drill restores the database from one target into a throwaway cluster at a chosen point in
time and compares it with the live database as it was at that time (row counts of each
checked table up to the target time); restores the documents' latest snapshot into a scratch
directory and compares every file that has not changed since with the live one (SHA-256);
decrypts the newest logical dump and lists it with pg_restore. Each part is timed: the
database part is the restore time (RTO) of that target. Nothing it does writes to the live
database except one empty transaction and a WAL switch (so that the target time is archived).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lpse_backup import metrics
from lpse_backup.database import PgBackRest, psql
from lpse_backup.documents import Restic
from lpse_backup.dump import sha256
from lpse_backup.errors import BackupError, LpseBackupError
from lpse_backup.metrics import Result
from lpse_backup.portable import LATEST
from lpse_backup.settings import Settings, TableCheck
from lpse_backup.steps import Outcome, Steps
from lpse_backup.targets import Targets


def mark_target(dbname: str, timeout_s: float = 120) -> dt.datetime:
    """A target time whose WAL is in the archive: take the time, commit an (empty) transaction
    after it so that recovery finds a record past the target, switch WAL and wait for the
    archiver to report that segment."""
    target = dt.datetime.fromisoformat(psql("SELECT to_char(clock_timestamp(), 'YYYY-MM-DD HH24:MI:SS.USOF')", dbname))
    time.sleep(0.01)
    psql("SELECT txid_current()", dbname)
    segment = psql("SELECT pg_walfile_name(pg_switch_wal())", dbname)
    deadline = time.monotonic() + timeout_s
    while psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver", dbname) < segment:
        if time.monotonic() > deadline:
            raise BackupError(f"WAL segment {segment} was not archived within {timeout_s:.0f} s: is archiving failing?")
        time.sleep(0.5)
    return target


# Longest transaction expected between a row's timestamp and its commit (SPSE's are short).
IN_FLIGHT_S = 10

# Recovery refuses to run with lower limits than the primary had.
RECOVERY_LIMITS = (
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
)


def live_limits() -> dict[str, str]:
    names = ", ".join(f"'{n}'" for n in RECOVERY_LIMITS)
    rows = psql(f"SELECT name || '=' || setting FROM pg_settings WHERE name IN ({names})", "postgres")
    return dict(line.split("=", 1) for line in rows.splitlines())


class ThrowawayCluster:
    """A PostgreSQL cluster restored into `data`, on a Unix socket only, never archiving."""

    def __init__(self, data: Path, port: int, pg_bin: Path) -> None:
        self.data, self.port, self.pg_bin = data, port, pg_bin

    def prepare(self) -> None:
        if self.data.exists():
            shutil.rmtree(self.data)
        self.data.mkdir(parents=True, mode=0o700)
        shutil.chown(self.data, "postgres", "postgres")

    def start(self, timeout_s: float = 3600) -> None:
        # Debian keeps the configuration outside the data directory: give the copy its own.
        sock = self.data / "socket"
        sock.mkdir(exist_ok=True)
        shutil.chown(sock, "postgres", "postgres")
        (self.data / "postgresql.conf").write_text(
            f"port = {self.port}\nlisten_addresses = ''\nunix_socket_directories = '{sock}'\n"
            "archive_mode = off\nshared_buffers = 128MB\n"
            + "".join(f"{k} = {v}\n" for k, v in live_limits().items())
            + f"hba_file = '{self.data}/pg_hba.conf'\nident_file = '{self.data}/pg_ident.conf'\n"
        )
        (self.data / "pg_hba.conf").write_text("local all postgres peer\n")
        (self.data / "pg_ident.conf").write_text("")
        for f in ("postgresql.conf", "pg_hba.conf", "pg_ident.conf"):
            shutil.chown(self.data / f, "postgres", "postgres")
        res = subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self.pg_bin / "pg_ctl"), "-D", str(self.data),
             "-l", str(self.data / "drill.log"), "-w", "-t", str(int(timeout_s)), "start"],
            capture_output=True, text=True,
        )  # fmt: skip
        if res.returncode != 0:
            log = (self.data / "drill.log").read_text()[-800:] if (self.data / "drill.log").exists() else ""
            raise BackupError(f"the restored cluster did not start: {res.stderr.strip()[-300:]} {log}")
        deadline = time.monotonic() + timeout_s
        while self.sql("postgres", "SELECT pg_is_in_recovery()") != "f":
            if time.monotonic() > deadline:
                raise BackupError(f"the restored cluster was still recovering after {timeout_s:.0f} s")
            time.sleep(0.5)

    def sql(self, dbname: str, query: str) -> str:
        return psql(query, dbname, self.port, str(self.data / "socket"))

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                ["runuser", "-u", "postgres", "--", str(self.pg_bin / "pg_ctl"), "-D", str(self.data),
                 "-m", "immediate", "-w", "stop"],
                capture_output=True,
            )  # fmt: skip
        shutil.rmtree(self.data, ignore_errors=True)


def compare_tables(
    restored: Callable[[str], str], live: Callable[[str], str], checks: Sequence[TableCheck], target: dt.datetime
) -> str:
    """Rows up to the target time, table by table, must be the same in the copy and the live
    database (rows are only ever added in these tables: tenders, bids, the audit log). A copy
    that holds no row at all while the live database has some proves nothing: it fails."""
    if not checks:
        raise BackupError("no tables to compare: set backup_drill_checks (table and time column)")
    found, restored_total = [], 0
    for c in checks:
        q = f"SELECT count(*) FROM {c.table} WHERE {c.time_column} <= '{target.isoformat()}'"
        got, want = int(restored(q)), int(live(q))
        if got != want:
            raise BackupError(f"{c.table}: the restored copy has {got} rows up to {target}, the live database {want}")
        found.append(f"{c.table} {got}")
        restored_total += got
    if restored_total == 0:
        live_total = sum(int(live(f"SELECT count(*) FROM {c.table}")) for c in checks)
        if live_total:
            raise BackupError(
                f"the restored copy holds no row of {', '.join(c.table for c in checks)} up to {target}, while the "
                f"live database has {live_total}: an empty copy proves nothing"
            )
    return "rows compared: " + ", ".join(found)


def compare_files(restored_root: Path, sources: Sequence[Path], snapshot_time: dt.datetime) -> str:
    """Every live file not modified since the snapshot must be in the copy, byte for byte; a
    snapshot that matches no file at all while the live store has files fails."""
    cutoff = snapshot_time.timestamp()
    checked = live_files = 0
    for src in sources:
        for dirpath, _, names in os.walk(src):
            for name in names:
                live = Path(dirpath) / name
                with contextlib.suppress(FileNotFoundError):
                    if live.is_symlink():
                        continue
                    live_files += 1
                    if live.stat().st_mtime >= cutoff:
                        continue  # changed after the snapshot: not expected to match
                    copy = restored_root / live.relative_to("/")
                    if not copy.is_file():
                        raise BackupError(f"{live} is missing from the restored snapshot")
                    if sha256(copy) != sha256(live):
                        raise BackupError(f"{live} differs from its restored copy")
                    checked += 1
    if checked == 0 and live_files:
        raise BackupError(
            f"no file of the snapshot could be compared: the live store has {live_files} files, all newer than "
            f"the snapshot ({snapshot_time.isoformat(timespec='seconds')}) or missing from it"
        )
    return f"{checked} files identical (of {live_files} live)"


def tree_bytes(paths: Sequence[Path]) -> int:
    total = 0
    for root in paths:
        for dirpath, _, names in os.walk(root):
            for name in names:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


# Where a drill may restore by default, best first: the usual homes of large local data. Never a
# mount point found elsewhere (a USB drive, a bind-mounted file).
SCRATCH_CANDIDATES = (Path("/var/tmp"), Path("/srv"), Path("/home"), Path("/var"), Path("/opt"), Path("/"))


def scratch_dir(configured: Path | None, busy: Sequence[Path]) -> Path:
    """Where the drill restores to: the configured directory, else `lpse-backup-drill` in the
    first of SCRATCH_CANDIDATES on a filesystem that is not one of `busy` (the database's, the
    documents'), else /var/tmp/lpse-backup-drill (the free-space check then guards it)."""
    if configured is not None:
        return configured
    busy_devs = {os.stat(p).st_dev for p in busy if p.exists()}
    for candidate in SCRATCH_CANDIDATES:
        with contextlib.suppress(OSError):
            if candidate.is_dir() and os.stat(candidate).st_dev not in busy_devs and os.access(candidate, os.W_OK):
                return candidate / "lpse-backup-drill"
    return Path("/var/tmp/lpse-backup-drill")


@dataclass
class Drill:
    br: PgBackRest
    dbname: str
    checks: Sequence[TableCheck]
    scratch: Path
    port: int
    pg_bin: Path
    margin_bytes: int = 512 * 2**20

    def room(self, need: int, what: str) -> None:
        """Refuse to restore what would not fit with the margin to spare: the drill must never
        fill a filesystem that SPSE or PostgreSQL writes to."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.scratch).free
        if free < need + self.margin_bytes:
            raise BackupError(
                f"not enough room for the drill of {what} in {self.scratch}: it restores {need / 2**30:.2f} GiB and "
                f"keeps {self.margin_bytes / 2**30:.2f} GiB free, the filesystem has {free / 2**30:.2f} GiB. Nothing "
                f"was restored; set backup_drill_dir to a larger filesystem (not the database's)."
            )

    def database(self, repo: int, repo_path: Path | None = None, target: dt.datetime | None = None) -> str:
        """Restore to `target` and compare the rows up to it; returns what matched.

        Without a target: a repository that gets WAL continuously is restored to a fresh mark
        (now); a copy (the drive's, `repo_path`) to the end of its archive, and compared up to
        the end of its newest backup, which it holds for certain."""
        at = target
        if at is None and repo_path is None:
            at = mark_target(self.dbname)
        if at is None:
            compare_at = dt.datetime.fromtimestamp(self.br.backups(repo, repo_path)[-1].stopped, dt.UTC)
        else:
            compare_at = at
        # A row stamped just before the target by a transaction that committed after it is
        # rightly missing from the copy: compare up to a little before.
        compare_at -= dt.timedelta(seconds=IN_FLIGHT_S)
        self.room(self.br.backups(repo, repo_path)[-1].size_bytes, "the database")
        cluster = ThrowawayCluster(self.scratch / "pg", self.port, self.pg_bin)
        cluster.prepare()
        try:
            when = at.isoformat(sep=" ") if at else None
            self.br.restore(repo, cluster.data, target_time=when, repo_path=repo_path)
            cluster.start()
            matched = compare_tables(
                lambda q: cluster.sql(self.dbname, q), lambda q: psql(q, self.dbname), self.checks, compare_at
            )
            return f"{matched} up to {compare_at.astimezone(dt.UTC).isoformat(timespec='seconds')}"  # one zone for all
        finally:
            cluster.remove()

    def documents(self, repo: Restic, sources: Sequence[Path], tag: str = "documents") -> str:
        latest = repo.latest(tag)
        if latest is None:
            raise BackupError(f"no {tag} snapshot in {repo.where}")
        self.room(tree_bytes(sources), f"the {tag}")
        target = self.scratch / "files"
        shutil.rmtree(target, ignore_errors=True)
        try:
            repo.restore(latest["id"], target)
            when = dt.datetime.fromisoformat(latest["time"])
            return compare_files(target, sources, when) + f" (snapshot {latest['short_id']})"
        finally:
            shutil.rmtree(target, ignore_errors=True)

    @staticmethod
    def dump(dump_file: Path, identity_file: Path) -> str:
        """Decrypt with the escrowed identity and have pg_restore read the whole archive into an SQL
        script: stock tools can restore every table. The whole file goes through age, whose every
        chunk is authenticated, so damage anywhere in it fails the drill (reading only the archive's
        table of contents would stop at its head)."""
        with (
            subprocess.Popen(
                ["age", "--decrypt", "-i", str(identity_file), str(dump_file)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            ) as dec,
            subprocess.Popen(
                ["pg_restore", "--file=-"], stdin=dec.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            ) as script,
        ):
            assert dec.stdout is not None and script.stdout is not None
            dec.stdout.close()  # pg_restore holds the read end now
            count = subprocess.run(["grep", "-c", "^COPY "], stdin=script.stdout, capture_output=True, text=True)
            script.stdout.close()
            restore_err = script.stderr.read().decode() if script.stderr else ""
            age_err = dec.stderr.read().decode() if dec.stderr else ""
        if dec.returncode != 0:
            raise BackupError(f"age could not decrypt {dump_file.name}: {age_err.strip()[-300:]}")
        if script.returncode != 0:
            raise BackupError(f"pg_restore cannot read {dump_file.name}: {restore_err.strip()[-300:]}")
        if count.returncode not in (0, 1):  # 1: no table at all
            raise BackupError(f"could not count the tables of {dump_file.name}: {count.stderr.strip()}")
        size = dump_file.stat().st_size
        return f"{dump_file.name}: {int(count.stdout or 0)} tables, all {size / 2**20:.1f} MiB read back"


def run_drill(s: Settings, targets: Sequence[str], at: dt.datetime | None, out: Callable[[str], None]) -> list[Result]:
    """`lpse-backup drill`: every target that is here, each part a step of its own; a drive that
    is not plugged in (or is not of the rota) is skipped, said in one line and recorded as
    skipped. Writes drill.prom whatever happened."""
    t = Targets(s)
    scratch = scratch_dir(s.drill_dir, [s.pg_data, *s.documents])
    out(f"drill: restoring into {scratch}")
    d = Drill(t.br, s.dbname, s.drill_checks, scratch, s.drill_port, s.pg_bin, s.drill_margin_bytes)
    steps = Steps(out)

    def part(fn: Callable[[], str]) -> Callable[[], Outcome]:
        return lambda: Outcome(verified=True, detail=fn())

    def documents(target: str) -> str:
        with t.documents(target) as repo:
            return d.documents(repo, s.documents)

    for target in targets:
        datasets = ["database"] + (["documents"] if target != "local" else [])
        if target == "portable":
            try:
                drive = t.drive()
            except LpseBackupError as e:
                out(f"portable drive absent: its drill is skipped ({e})")
                for ds in datasets:
                    steps.pair(ds, target, lambda: Outcome(skipped=True, detail="no rota drive plugged in"), "drill")
                continue
            repo_path: Path | None = drive.mountpoint / LATEST
        else:
            repo_path = None
        repo = t.repo(target)
        steps.pair("database", target, part(lambda r=repo, p=repo_path: d.database(r, p, at)), "drill")  # type: ignore[misc]
        if "documents" in datasets:
            steps.pair("documents", target, part(lambda tg=target: documents(tg)), "drill")  # type: ignore[misc]
    if s.age_identity_file:
        identity = s.age_identity_file

        def dump() -> str:
            newest = sorted((s.state_dir / "dumps").glob("*.dump.age"))
            if not newest:
                raise BackupError("no dump on the server yet: the nightly run makes one")
            return d.dump(newest[-1], identity)

        steps.pair("dump", "local", part(dump), "drill")
    metrics.write_drill(s.textfile_dir / "drill.prom", steps.results)
    return steps.results
