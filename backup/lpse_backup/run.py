"""`lpse-backup run`: one backup run of every dataset to every target, with progress output.

Each dataset/target pair is tried on its own: an unplugged drive fails the portable copies and
nothing else, a dead S3 endpoint fails the off-room copies and nothing else. The run prints
what it did, writes the metrics textfile (a failed pair keeps the time of its last good copy)
and exits 1 if any pair failed, so the timer's unit shows failed too.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import os
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from lpse_backup import metrics
from lpse_backup.database import PgBackRest
from lpse_backup.documents import BackupError, Restic
from lpse_backup.drill import Drill, TableCheck, psql, timed
from lpse_backup.dump import dump_database
from lpse_backup.media import Drive, Ledger, MediaError, check_drive, eject, insert
from lpse_backup.offroom import Offroom, OffroomError, check_bucket, ensure_bucket, keep_newest, upload
from lpse_backup.portable import sync_repository


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    textfile_dir: Path
    drive_mountpoint: Path
    rota: tuple[str, ...]
    rotate_days: int
    offroom: Offroom
    pgbackrest_config: Path
    stanza: str
    offroom_repo: int
    local_repo: int
    local_repo_path: Path
    dbname: str
    pg_dump: tuple[str, ...]
    age_recipients: tuple[str, ...]
    documents: tuple[Path, ...]
    restic_password_file: Path
    # /etc and the SPSE configuration: restic, in the same repositories as the documents.
    system: tuple[Path, ...] = ()
    # Never in a backup: the backup keys themselves (they would sit next to what they unlock).
    system_excludes: tuple[str, ...] = ()
    # The bucket must lock new versions at least this long (longer than the S3 retention).
    lock_days: int = 400
    # pgbackrest verify of the bucket reads all of it: once every this many days.
    verify_s3_database_days: int = 7
    # Restore drills: throwaway cluster port, scratch space, tables compared up to the target time.
    drill_port: int = 5499
    drill_dir: Path = Path("/var/tmp/lpse-backup-drill")
    drill_checks: tuple[TableCheck, ...] = ()
    pg_bin: Path = Path("/usr/lib/postgresql/15/bin")
    pg_data: Path = Path("/var/lib/postgresql/15/main")
    pg_service: str = "postgresql@15-main"
    # The age identity (secret) for drills and restores of the dumps; optional on the server.
    age_identity_file: Path | None = None
    # Retention per target: restic (daily, weekly, monthly) and how many dumps to keep.
    keep_s3: tuple[int, int, int] = (14, 8, 12)
    keep_portable: tuple[int, int, int] = (7, 4, 3)
    dumps_keep: int = 7
    # Share of the restic data read back and decrypted after each run.
    check_subset: str = "2%"

    @classmethod
    def load(cls, path: Path) -> Settings:
        try:
            d = tomllib.loads(path.read_text())
            s3 = d["offroom"]
            secret = Path(s3["secret_key_file"]).read_text().strip()
            return cls(
                state_dir=Path(d["state_dir"]),
                textfile_dir=Path(d["textfile_dir"]),
                drive_mountpoint=Path(d["portable"]["mountpoint"]),
                rota=tuple(d["portable"]["rota"]),
                rotate_days=int(d["portable"].get("rotate_days", 7)),
                offroom=Offroom(
                    s3["endpoint"],
                    s3["bucket"],
                    s3["access_key"],
                    secret,
                    s3.get("region", "default"),
                    s3.get("ca_file"),
                ),
                pgbackrest_config=Path(d["database"]["pgbackrest_config"]),
                stanza=d["database"].get("stanza", "spse"),
                offroom_repo=int(d["database"].get("offroom_repo", 1)),
                local_repo=int(d["database"].get("local_repo", 2)),
                local_repo_path=Path(d["database"]["local_repo_path"]),
                dbname=d["database"]["dbname"],
                pg_dump=tuple(d["database"].get("pg_dump", ["runuser", "-u", "postgres", "--", "pg_dump"])),
                age_recipients=tuple(d["dump"]["age_recipients"]),
                documents=tuple(Path(p) for p in d["documents"]["paths"]),
                restic_password_file=Path(d["documents"]["restic_password_file"]),
                keep_s3=_keep(d.get("retention", {}).get("s3", [14, 8, 12]), "s3"),
                keep_portable=_keep(d.get("retention", {}).get("portable", [7, 4, 3]), "portable"),
                dumps_keep=int(d.get("retention", {}).get("dumps", 7)),
                check_subset=str(d.get("verify", {}).get("restic_subset", "2%")),
                system=tuple(Path(p) for p in d.get("system", {}).get("paths", [])),
                system_excludes=tuple(d.get("system", {}).get("excludes", [])),
                lock_days=int(s3.get("lock_days", 400)),
                verify_s3_database_days=int(d.get("verify", {}).get("s3_database_days", 7)),
                drill_port=int(d.get("drill", {}).get("port", 5499)),
                drill_dir=Path(d.get("drill", {}).get("dir", "/var/tmp/lpse-backup-drill")),
                drill_checks=tuple(
                    TableCheck(c["table"], c["time_column"]) for c in d.get("drill", {}).get("checks", [])
                ),
                pg_bin=Path(d["database"].get("pg_bin", "/usr/lib/postgresql/15/bin")),
                pg_data=Path(d["database"].get("pg_data", "/var/lib/postgresql/15/main")),
                pg_service=d["database"].get("service", "postgresql@15-main"),
                age_identity_file=Path(d["dump"]["identity_file"]) if d["dump"].get("identity_file") else None,
            )
        except (OSError, KeyError, ValueError, tomllib.TOMLDecodeError) as e:
            raise BackupError(f"{path}: {e.__class__.__name__}: {e} — see backup/README.md for the settings") from e


def _keep(value: object, target: str) -> tuple[int, int, int]:
    """[daily, weekly, monthly] snapshots to keep, each at least 0, the daily at least 1."""
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) and v >= 0 for v in value)):
        raise ValueError(f"retention.{target} must be [daily, weekly, monthly], e.g. [14, 8, 12], not {value!r}")
    if value[0] < 1:
        raise ValueError(f"retention.{target}: keep at least 1 daily snapshot, or the newest copy could go")
    return (value[0], value[1], value[2])


Errors = (BackupError, MediaError, OffroomError)


class Run:
    def __init__(self, s: Settings, out: Callable[[str], None] = print) -> None:
        self.s = s
        self.out = out
        self.results: list[metrics.Result] = []
        self.br = PgBackRest(s.pgbackrest_config, s.stanza)

    def step(
        self, dataset: str, target: str, action: Callable[[], int], verify: Callable[[], bool] | None = None
    ) -> None:
        """Make one copy, then check it (`verify` returns False when it skipped the check this
        time); record both; never let one pair stop the others. A copy counts as good only
        after its check passed (or was skipped as not due)."""
        self.out(f"[{dataset} -> {target}] ...")
        t0 = time.monotonic()
        size, verified, verify_s = 0, None, 0.0
        try:
            size = action()
            if verify:
                v0 = time.monotonic()
                verified = False
                checked = verify()
                verified, verify_s = True, time.monotonic() - v0
                if checked:
                    self.out(f"[{dataset} -> {target}] verified in {verify_s:.1f} s")
        except Errors as e:
            self.out(f"[{dataset} -> {target}] FAILED: {e}")
            ok = False
        except Exception as e:  # a bug must not cost the other copies or the metrics
            self.out(f"[{dataset} -> {target}] FAILED (unexpected {e.__class__.__name__}): {e}")
            ok = False
        else:
            self.out(f"[{dataset} -> {target}] ok, {size / 2**20:.1f} MiB in {time.monotonic() - t0:.1f} s")
            ok = True
        self.results.append(
            metrics.Result(dataset, target, ok, time.time(), time.monotonic() - t0, size, verified, verify_s)
        )

    def drive(self) -> Drive:
        # Checked again before every write to it: a drive can be pulled out in the middle of a run.
        return check_drive(self.s.drive_mountpoint, self.s.rota)

    def bucket(self) -> None:
        """Never write to a bucket that would not protect the copy (lock gone, too short)."""
        check_bucket(self.s.offroom, self.s.lock_days)

    def room_for(self, repo: Restic, tag: str, paths: tuple[Path, ...]) -> None:
        """Before a snapshot to the drive: room for every file changed since the last snapshot
        (all of them for a new repository), as if nothing deduplicated or compressed."""
        last = repo.latest(tag)
        since = dt.datetime.fromisoformat(last["time"]).timestamp() if last else 0.0
        need = 0
        for root in paths:
            for dirpath, _, names in os.walk(root):
                for name in names:
                    with contextlib.suppress(OSError):
                        st = os.lstat(os.path.join(dirpath, name))
                        if st.st_mtime >= since or st.st_ctime >= since:
                            need += st.st_size
        check_drive(self.s.drive_mountpoint, self.s.rota, need_bytes=need)

    def restic(self, target: str) -> Restic:
        if target == "s3":
            o = self.s.offroom
            env = {"AWS_ACCESS_KEY_ID": o.access_key, "AWS_SECRET_ACCESS_KEY": o.secret_key}
            if o.ca_file:
                env["RESTIC_CACERT"] = o.ca_file
            return Restic(f"s3:{o.endpoint}/{o.bucket}/documents", self.s.restic_password_file, env)
        return Restic(str(self.drive().mountpoint / "documents"), self.s.restic_password_file)

    def files(self, target: str, tag: str, paths: tuple[Path, ...], excludes: tuple[str, ...] = ()) -> int:
        """A restic snapshot of `paths`; then the target's retention (restic always keeps the
        newest snapshot of each set of paths)."""
        if target == "s3":
            self.bucket()
        repo = self.restic(target)
        repo.init()
        repo.unlock()  # a run killed midway leaves its lock behind; prune would refuse to start
        if target == "portable":
            self.room_for(repo, tag, paths)
        added = repo.backup(list(paths), tags=[tag], excludes=excludes).bytes_added
        repo.forget(*(self.s.keep_s3 if target == "s3" else self.s.keep_portable))
        return added

    def check_files(self, target: str) -> bool:
        """Read a subset back: a copy that does not decrypt is not a copy."""
        self.restic(target).check(self.s.check_subset)
        return True

    def database(self, repo: int) -> int:
        if repo == self.s.offroom_repo:
            self.bucket()
        return self.br.backup(repo).repo_bytes

    def verify_database(self, repo: int) -> bool:
        """pgbackrest verify reads the whole repository: each run for the local one, every
        `verify_s3_database_days` for the bucket (the state file remembers the last one)."""
        stamp = self.s.state_dir / f"verified-repo{repo}"
        if repo == self.s.offroom_repo and stamp.exists():
            age_days = (time.time() - stamp.stat().st_mtime) / 86400
            if age_days < self.s.verify_s3_database_days:
                return False
        self.br.verify(repo)
        stamp.touch()
        return True

    def prune_dumps(self, dumps: Path) -> None:
        """Keep the newest `dumps_keep` dumps (at least the one just made); the drive mirrors this."""
        for old in sorted(dumps.glob("*.dump.age"))[: -max(1, self.s.dumps_keep)]:
            old.unlink()

    def all(self) -> list[metrics.Result]:
        s = self.s
        now = dt.datetime.now(dt.UTC)
        ledger = Ledger.load(s.state_dir / "drives.json")
        try:
            label = self.drive().label
            ledger.seen(label, now)
            if ledger.swap_due(label, now, s.rotate_days):
                self.out(
                    f"drive {label} has been here {s.rotate_days} days or more: take it to the safe, bring the next"
                )
        except MediaError as e:
            self.out(f"portable drive: {e}")

        self.step("database", "s3", lambda: self.database(s.offroom_repo), lambda: self.verify_database(s.offroom_repo))
        self.step("database", "local", lambda: self.database(s.local_repo), lambda: self.verify_database(s.local_repo))
        self.step(
            "database", "portable", lambda: sync_repository(s.local_repo_path, self.drive(), "pgbackrest").bytes_copied
        )

        dumps = s.state_dir / "dumps"
        dumps.mkdir(parents=True, exist_ok=True)
        made: list[Path] = []

        def dump_local() -> int:
            d = dump_database(s.dbname, dumps, list(s.age_recipients), pg_dump=s.pg_dump)
            made.append(d.path)
            self.prune_dumps(dumps)
            return d.bytes

        def dump_to(target: str) -> int:
            if not made:
                raise BackupError("no dump was made in this run")
            if target == "s3":
                self.bucket()
                upload(s.offroom, made[0], f"dumps/{made[0].name}")
                keep_newest(s.offroom, "dumps/", s.dumps_keep)
            else:
                sync_repository(dumps, self.drive(), "dumps")
            return made[0].stat().st_size

        self.step("dump", "local", dump_local)
        self.step("dump", "s3", lambda: dump_to("s3"))
        self.step("dump", "portable", lambda: dump_to("portable"))
        for target in ("s3", "portable"):
            self.step(
                "documents",
                target,
                lambda t=target: self.files(t, "documents", s.documents),  # type: ignore[misc]
                lambda t=target: self.check_files(t),  # type: ignore[misc]
            )
            if s.system:
                self.step("system", target, lambda t=target: self.files(t, "system", s.system, s.system_excludes))  # type: ignore[misc]

        try:
            label = self.drive().label
            for r in self.results:
                if r.target == "portable" and r.success:
                    ledger.add_snapshot(label, r.dataset, now.isoformat(timespec="seconds"), now)
        except MediaError:
            pass
        ledger.save()
        metrics.write(s.textfile_dir / "backup.prom", self.results)
        return self.results

    # --- restore drill -----------------------------------------------------------------

    def drill(self, targets: list[str], at: dt.datetime | None = None) -> list[metrics.Result]:
        """Restore from each target and compare with the live data; writes drill.prom."""
        s = self.s
        d = Drill(self.br, s.dbname, s.drill_checks, s.drill_dir, s.drill_port, s.pg_bin)
        out: list[metrics.Result] = []

        def record(dataset: str, target: str, part: Callable[[], str]) -> None:
            r = timed(dataset, target, part, self.out)
            out.append(metrics.Result(dataset, target, r.success, time.time(), r.duration_s))

        for target in targets:
            if target == "portable":
                record("database", target, lambda: d.database(s.local_repo, self.drive().mountpoint / "pgbackrest", at))
            else:
                repo = s.offroom_repo if target == "s3" else s.local_repo
                record("database", target, lambda r=repo: d.database(r, None, at))  # type: ignore[misc]
            if target != "local":
                record("documents", target, lambda t=target: d.documents(self.restic(t), s.documents))  # type: ignore[misc]
        if s.age_identity_file:
            newest = sorted((s.state_dir / "dumps").glob("*.dump.age"))
            record("dump", "local", lambda: d.dump(newest[-1], s.age_identity_file) if newest else _no_dump())  # type: ignore[arg-type]
        metrics.write_drill(s.textfile_dir / "drill.prom", out)
        return out

    # --- status, between runs --------------------------------------------------------------

    def status(self) -> metrics.Status:
        """Drive present/free and the WAL archiver's state; written to status.prom."""
        s = self.s
        label, free, size, due = "", 0, 0, False
        try:
            drive = self.drive()
            label, free, size = drive.label, drive.free_bytes, drive.size_bytes
            due = Ledger.load(s.state_dir / "drives.json").swap_due(label, dt.datetime.now(dt.UTC), s.rotate_days)
        except MediaError:
            pass
        row = psql(
            "SELECT coalesce(extract(epoch FROM last_archived_time), 0),"
            " coalesce(extract(epoch FROM last_failed_time), 0), failed_count FROM pg_stat_archiver",
            "postgres",
        ).split("|")
        ready_dir = s.pg_data / "pg_wal" / "archive_status"
        ready = sum(1 for _ in ready_dir.glob("*.ready")) if ready_dir.exists() else 0
        st = metrics.Status(label, free, size, due, float(row[0]), float(row[1]), int(row[2]), ready)
        metrics.write_status(s.textfile_dir / "status.prom", st)
        return st


@contextlib.contextmanager
def exclusive(state_dir: Path, what: str) -> Iterator[None]:
    """One backup, drill, restore or drive change at a time: the nightly timer and a run by hand
    must not write the same repositories, and a drive must not be ejected under a run.
    `what` is the command, as in `lpse-backup <what>`."""
    fd = os.open(state_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another lpse-backup command"
            raise BackupError(
                f"`lpse-backup {what}` must wait: {holder} is running (journalctl -fu 'lpse-backup*' shows it); "
                "try again when it has ended"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"`lpse-backup {what}` (pid {os.getpid()})".encode(), 0)
        yield
    finally:
        os.close(fd)


def drive_command(run: Run, action: str) -> int:
    """`lpse-backup drive eject|insert|show`: the rotation of the portable drives."""
    s = run.s
    ledger = Ledger.load(s.state_dir / "drives.json")
    now = dt.datetime.now(dt.UTC)
    if action == "show":
        print(json.dumps({"rota": list(s.rota), "drives": {k: asdict(v) for k, v in ledger.drives.items()}}, indent=2))
        return 0
    if action == "eject":
        drive = eject(s.drive_mountpoint, s.rota, ledger, now)
        held = sorted({x["dataset"] for x in ledger.drives[drive.label].snapshots})
        print(
            f"drive {drive.label} is unmounted: pull it out and take it to the safe "
            f"(it holds {', '.join(held) or 'nothing yet'}). "
            f"Bring {ledger.next_drive(s.rota, drive.label)} and plug it in."
        )
        return 0
    drive = insert(s.drive_mountpoint, s.rota, ledger, now)
    print(
        f"drive {drive.label} is in at {drive.mountpoint}, {drive.free_bytes / 2**30:.1f} GiB free of "
        f"{drive.size_bytes / 2**30:.1f} GiB: the next backup run copies to it."
    )
    return 0


def _no_dump() -> str:
    raise BackupError("no dump on the server yet: the nightly run makes one")


def main(argv: list[str] | None = None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=Path("/etc/lpse-backup/config.toml"))
    p = argparse.ArgumentParser(prog="lpse-backup", description="backups of the SPSE server")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, what: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=what)

    command("run", "back up every dataset to every target, verify, apply retention")
    drill = command("drill", "restore into a throwaway cluster and a scratch directory, compare")
    drill.add_argument("--target", action="append", choices=["s3", "portable", "local"])
    drill.add_argument("--time", help="point in time to restore the database to (ISO 8601 with zone); default now")
    command("status", "write the drive and WAL archive metrics (the status timer)")
    command("prepare-offroom", "create or check the bucket: versioning, COMPLIANCE lock, lifecycle")
    prep = command("prepare-drive", "format a drive of the rota (ext4 with its label)")
    prep.add_argument("device")
    prep.add_argument("--label", required=True)
    prep.add_argument("--yes", action="store_true", help="format even if the device already has a filesystem")
    drv = command("drive", "portable drive rotation: eject it for the safe, check the next one in, show the ledger")
    drv.add_argument("action", choices=["eject", "insert", "show"])
    rest = command("restore", "restore the database and documents onto this server")
    rest.add_argument("--from", dest="source", choices=["s3", "portable"], required=True)
    rest.add_argument("--time", help="point in time (ISO 8601 with zone); default: the latest")
    rest.add_argument("--yes", action="store_true", help="do not ask before replacing this server's data")
    args = p.parse_args(argv)
    try:
        settings = Settings.load(args.config)
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        run = Run(settings)
        if args.command == "run":
            with exclusive(settings.state_dir, "run"):
                results = run.all()
        elif args.command == "drill":
            at = _parse_time(args.time) if args.time else None
            with exclusive(settings.state_dir, "drill"):
                results = run.drill(args.target or ["s3", "portable"], at)
        elif args.command == "drive":
            if args.action == "show":
                return drive_command(run, "show")
            with exclusive(settings.state_dir, f"drive {args.action}"):
                return drive_command(run, args.action)
        elif args.command == "status":
            st = run.status()
            print(
                f"drive: {st.drive_label or 'none'}"
                + (f", {st.drive_free_bytes / 2**30:.1f} GiB free" if st.drive_label else "")
                + f"; WAL waiting to be archived: {st.wal_ready_segments} segments"
            )
            return 0
        elif args.command == "prepare-offroom":
            state, changed = ensure_bucket(settings.offroom, settings.lock_days)
            print(f"bucket {settings.offroom.bucket}: {'changed' if changed else 'unchanged'} ({state})")
            return 0
        elif args.command == "prepare-drive":
            from lpse_backup.media import prepare_drive

            prepare_drive(args.device, args.label, settings.rota, force=args.yes)
            print(f"{args.device} is now drive {args.label}: plug it in and mount it at {settings.drive_mountpoint}")
            return 0
        else:
            from lpse_backup.restore import restore_server

            with exclusive(settings.state_dir, "restore"):
                restore_server(run, args.source, _parse_time(args.time) if args.time else None, args.yes)
            return 0
    except Errors as e:
        print(f"lpse-backup: {e}", file=sys.stderr)
        return 2
    failed = [f"{r.dataset}->{r.target}" for r in results if not r.success]
    what = "copies made" if args.command == "run" else "restores passed the drill"
    print(
        f"lpse-backup: {len(results) - len(failed)} of {len(results)} {what}"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


def _parse_time(value: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError as e:
        raise BackupError(f"--time {value!r} is not ISO 8601, e.g. 2026-11-24T10:15:00+07:00") from e
    if when.tzinfo is None:
        raise BackupError(f"--time {value!r} has no time zone: add one, e.g. +07:00 for WIB")
    return when


if __name__ == "__main__":
    sys.exit(main())
