"""The lpse-backup command line. Exit codes, for every command: 0 done (a drill: every target
that is here passed; absent ones are skipped); 1 a step failed: a backup pair, the drill of a
present target, one part of a restore, a reading of the status timer (the others were still done
and the metrics written); 2 the command could not run (broken settings, another lpse-backup command
holds the lock, a bad argument, a restore whose source cannot be read)."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from lpse_backup.errors import BackupError, LpseBackupError
from lpse_backup.metrics import Result
from lpse_backup.settings import Settings


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


def parse_time(value: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError as e:
        raise BackupError(f"--time {value!r} is not ISO 8601, e.g. 2026-11-24T10:15:00+07:00") from e
    if when.tzinfo is None:
        raise BackupError(f"--time {value!r} has no time zone: add one, e.g. +07:00 for WIB")
    return when


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=Path("/etc/lpse-backup/config.toml"))
    p = argparse.ArgumentParser(prog="lpse-backup", description="backups of the SPSE server")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, what: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=what)

    run = command("run", "back up every dataset to every target, verify, apply retention")
    run.add_argument(
        "--full", action="store_true", help="full database backups in every repository, whatever the schedule says"
    )
    drill = command("drill", "restore into a throwaway cluster and a scratch directory, compare")
    drill.add_argument("--target", action="append", choices=["s3", "portable", "local"])
    drill.add_argument("--time", help="point in time to restore the database to (ISO 8601 with zone); default now")
    command("status", "write the drive and WAL archive metrics (the status timer)")
    check = sub.add_parser("check-config", help="check a settings file (the backup role's validate)")
    check.add_argument("file", type=Path)
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "check-config":
            s = Settings.load(args.file, read_secrets=False)
            print(f"{args.file}: settings are sound (rota {', '.join(s.rota)}; bucket {s.offroom.bucket})")
            return 0
        s = Settings.load(args.config)
        s.state_dir.mkdir(parents=True, exist_ok=True)
        results: list[Result]
        if args.command == "run":
            from lpse_backup.nightly import Nightly

            with exclusive(s.state_dir, "run"):
                results = Nightly(s, full=args.full).run()
            _refresh_status(s)
            return _summary(results, "copies made")
        if args.command == "drill":
            from lpse_backup.drill import run_drill

            at = parse_time(args.time) if args.time else None
            with exclusive(s.state_dir, "drill"):
                results = run_drill(s, args.target or ["s3", "portable"], at, print)
            return _summary(results, "restores passed the drill")
        if args.command == "status":
            from lpse_backup.status import run_status

            st, ok = run_status(s)
            d, w = st.drive, st.wal
            print(
                f"drive: {d.label or 'none'}"
                + (f", {d.free_bytes / 2**30:.1f} GiB free" if d.label else "")
                + (f"; WAL waiting to be archived: {w.ready_segments} segments" if w else "; WAL archive: not read")
                + ("" if w is None or w.archiving else "; WAL archiving is OFF: run playbooks/site.yml for this host")
            )
            return 0 if ok else 1
        if args.command == "drive":
            from lpse_backup.drives import drive_command

            if args.action == "show":
                return drive_command(s, "show")
            with exclusive(s.state_dir, f"drive {args.action}"):
                rc = drive_command(s, args.action)
            _refresh_status(s)
            return rc
        if args.command == "prepare-offroom":
            from lpse_backup.offroom import ensure_bucket

            state, changed = ensure_bucket(s.offroom, s.lock_days)
            print(f"bucket {s.offroom.bucket}: {'changed' if changed else 'unchanged'} ({state})")
            return 0
        if args.command == "prepare-drive":
            from lpse_backup.media import prepare_drive

            prepare_drive(args.device, args.label, s.rota, force=args.yes)
            print(f"{args.device} is now drive {args.label}: plug it in and mount it at {s.drive_mountpoint}")
            return 0
        from lpse_backup.restore import restore_server

        with exclusive(s.state_dir, "restore"):
            results = restore_server(s, args.source, parse_time(args.time) if args.time else None, args.yes, print)
        return _summary(results, "parts restored", "nothing to restore")
    except LpseBackupError as e:
        print(f"lpse-backup: {e}", file=sys.stderr)
        return 2


def _refresh_status(s: Settings) -> None:
    """A run or a drive change has just seen the drive: status.prom says so now, not at the
    status timer's next tick (until then `fab status` would say "no drive" beside a run that
    has just copied to it). What it cannot read it leaves to the timer, which reports it."""
    from lpse_backup.status import run_status

    run_status(s, out=lambda _line: None)


def _summary(results: list[Result], what: str, skipped_why: str = "target absent") -> int:
    done = [r for r in results if not r.skipped]
    failed = [f"{r.dataset}->{r.target}" for r in done if not r.success]
    skipped = [f"{r.dataset}->{r.target}" for r in results if r.skipped]
    print(
        f"lpse-backup: {len(done) - len(failed)} of {len(done)} {what}"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
        + (f"; skipped ({skipped_why}): {', '.join(skipped)}" if skipped else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
