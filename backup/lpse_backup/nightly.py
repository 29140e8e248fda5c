"""`lpse-backup run`: one backup run of every dataset to every target, with progress output.

Each dataset/target pair is a step of its own (lpse_backup.steps): an unplugged drive fails the
portable copies and nothing else, a dead S3 endpoint fails the off-room copies and nothing else,
a damaged drive ledger fails the drive's steps and nothing else. The run prints what it did,
writes the metrics textfile (a failed pair keeps the time of its last good copy) and exits 1 if
any pair failed, so the timer's unit shows failed too.

Its decisions (a full or an incremental database backup, which dumps and snapshots retention
keeps, whether a drive is due to be swapped) follow lpse_backup.clock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from lpse_backup import clock, metrics
from lpse_backup.documents import Restic
from lpse_backup.dump import Dump, dump_database, read_back
from lpse_backup.errors import BackupError, VerifyError
from lpse_backup.media import Ledger
from lpse_backup.offroom import keep_newest, sha256_of, upload
from lpse_backup.portable import copy_file, copy_repository
from lpse_backup.settings import Settings
from lpse_backup.steps import Outcome, Steps
from lpse_backup.targets import Targets

T = TypeVar("T")
RESTORED = "restored"  # state file: this server was restored; the next backups are full ones


class Nightly:
    def __init__(self, s: Settings, out: Callable[[str], None] = print, full: bool = False) -> None:
        self.s, self.out = s, out
        self.full = full  # asked for by hand (`lpse-backup run --full`), e.g. before an SPSE upgrade
        self.t = Targets(s)
        self.steps = Steps(out)
        self.now = clock.now()
        self.night = clock.stamp(self.now)
        self.fresh: dict[int, bool] = {}  # repository -> tonight's database backup to it succeeded
        self.dump: Dump | None = None
        self.ledger: Ledger | None = None

    # --- the database ------------------------------------------------------------------

    def database(self, repo: int) -> Outcome:
        self.fresh[repo] = False
        if repo == self.s.offroom_repo:
            self.t.bucket()
        restored = (self.s.state_dir / RESTORED).exists()
        kind = (
            "full"
            if restored or self.full
            else self.t.br.next_kind(repo, self.now, self.s.full_every_days, self.s.between_fulls)
        )
        b = self.t.br.backup(repo, kind, self.now)
        self.fresh[repo] = True
        v0 = time.monotonic()
        verified = _checked(lambda: self.verify_database(repo))
        return Outcome(b.repo_bytes, verified, time.monotonic() - v0, detail=f"{kind} backup {b.label}")

    def verify_database(self, repo: int) -> bool | None:
        """pgbackrest verify reads the whole repository: each run for the local one, every
        `verify_s3_database_days` for the bucket (the stamp file holds the clock time of the last
        one); None when it was not due."""
        stamp = self.s.state_dir / f"verified-repo{repo}"
        if repo == self.s.offroom_repo:
            with contextlib.suppress(OSError, ValueError):
                last = float(stamp.read_text())
                if (self.now.timestamp() - last) / 86400 < self.s.verify_s3_database_days - 0.01:
                    self.out(
                        f"[database -> s3] the bucket's full `pgbackrest verify` runs every "
                        f"{self.s.verify_s3_database_days} days; next after "
                        f"{dt.datetime.fromtimestamp(last + self.s.verify_s3_database_days * 86400, dt.UTC):%Y-%m-%d}"
                    )
                    return None
        self.t.br.verify(repo)
        _write_atomic(stamp, f"{self.now.timestamp()}\n")
        return True

    def database_to_drive(self) -> Outcome:
        s = self.s
        drive = self.t.drive()
        self.drive_known(drive.label)
        took: list[float] = []

        def verify(path: Path) -> None:
            v0 = time.monotonic()
            _checked(lambda: self.t.br.verify(s.local_repo, path))
            took.append(time.monotonic() - v0)

        c = copy_repository(s.local_repo_path, drive, s.stanza, self.night, s.portable_generations, verify)
        detail = f"copy {c.copy.name} holds up to {c.newest_backup}; {c.files_linked} files linked"
        detail += f", {c.copies_removed} old copies removed" if c.copies_removed else ""
        as_of = None
        if not self.fresh.get(s.local_repo):
            newest = self.t.br.backups(s.local_repo)[-1]
            as_of = newest.night
            when = dt.datetime.fromtimestamp(as_of, dt.UTC).isoformat(timespec="seconds")
            detail += (
                f". NOT a fresh copy: tonight's database backup to the local repository failed, so the drive's "
                f"newest backup is {newest.label} of {when} (its WAL since then is on the drive)"
            )
        return Outcome(c.bytes_copied, True, sum(took), as_of=as_of, detail=detail)

    # --- the dump ----------------------------------------------------------------------

    def dump_local(self) -> Outcome:
        s = self.s
        dumps = s.state_dir / "dumps"
        dumps.mkdir(parents=True, exist_ok=True)
        v0 = time.monotonic()
        self.dump = dump_database(s.dbname, dumps, list(s.age_recipients), pg_dump=s.pg_dump, now=self.now)
        for old in sorted(dumps.glob("*.dump.age"))[: -max(1, s.dumps_keep)]:
            old.unlink()
        return Outcome(self.dump.bytes, True, time.monotonic() - v0, detail=f"{self.dump.path.name}, read back")

    def made(self) -> Dump:
        if self.dump is None:
            raise BackupError("no dump was made in this run (see [dump -> local]): nothing to copy")
        return self.dump

    def dump_to_bucket(self) -> Outcome:
        d = self.made()
        self.t.bucket()
        key = f"dumps/{d.path.name}"
        upload(self.s.offroom, d.path, key)
        v0 = time.monotonic()
        if sha256_of(self.s.offroom, key) != d.sha256:
            raise VerifyError(f"{key} in bucket {self.s.offroom.bucket} reads back differently from the dump")
        verify_s = time.monotonic() - v0
        keep_newest(self.s.offroom, "dumps/", self.s.dumps_keep)
        return Outcome(d.bytes, True, verify_s, detail="read back")

    def dump_to_drive(self) -> Outcome:
        d = self.made()
        drive = self.t.drive()
        self.drive_known(drive.label)
        size = copy_file(
            d.path, drive, "dumps", self.s.dumps_keep, lambda p: read_back(p, d.sha256, "the drive's dump")
        )
        return Outcome(size, True, detail="read back")

    # --- files (documents, system) with restic -----------------------------------------

    def files(
        self, target: str, tag: str, paths: tuple[Path, ...], excludes: tuple[str, ...] = (), compression: str = "auto"
    ) -> Outcome:
        """A restic snapshot of `paths`, the target's retention (restic always keeps the newest
        snapshot of each set of paths), then a subset read back and decrypted."""
        if target == "s3":
            self.t.bucket()
        else:
            self.drive_known(self.t.drive().label)
        with self.t.documents(target) as repo:
            repo.init()
            if target == "portable":
                self.room_for(repo, tag, paths)
            snap = repo.backup(list(paths), tags=[tag], excludes=excludes, when=self.now, compression=compression)
            repo.forget(*(self.s.keep_s3 if target == "s3" else self.s.keep_portable))
            v0 = time.monotonic()
            _checked(lambda: repo.check(self.s.check_subset))
        return Outcome(snap.bytes_added, True, time.monotonic() - v0, detail=f"snapshot {snap.id[:8]}")

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
        self.t.drive(need_bytes=need)

    # --- the drive ledger ---------------------------------------------------------------

    def drive_known(self, label: str) -> None:
        """Every write to the drive is recorded in the ledger: a damaged ledger fails the drive's
        steps (and says how to fix it), not the others."""
        if self.ledger is None:
            self.ledger = Ledger.load(self.s.state_dir / "drives.json")
        self.ledger.seen(label, self.now)

    def greet_drive(self) -> None:
        drive = self.t.drive()
        self.drive_known(drive.label)
        assert self.ledger is not None
        if self.ledger.swap_due(drive.label, self.now, self.s.rotate_days):
            self.out(
                f"drive {drive.label} has been here {self.s.rotate_days} days or more: take it to the safe, "
                f"bring {self.ledger.next_drive(self.s.rota, drive.label)}"
            )

    def record_drive(self) -> None:
        portable = [r for r in self.steps.results if r.target == "portable" and r.success]
        if not portable or self.ledger is None:
            return
        label = self.t.drive().label
        for r in portable:
            self.ledger.add_snapshot(label, r.dataset, self.night, self.now)
        self.ledger.save()

    # --- the whole run -------------------------------------------------------------------

    def run(self) -> list[metrics.Result]:
        s, step = self.s, self.steps.pair
        self.steps.chore("portable drive", self.greet_drive)
        step("database", "s3", lambda: self.database(s.offroom_repo))
        step("database", "local", lambda: self.database(s.local_repo))
        step("database", "portable", self.database_to_drive)
        step("dump", "local", self.dump_local)
        step("dump", "s3", self.dump_to_bucket)
        step("dump", "portable", self.dump_to_drive)
        for target in ("s3", "portable"):
            step(
                "documents",
                target,
                lambda t=target: self.files(t, "documents", s.documents, compression=s.documents_compression),  # type: ignore[misc]
            )
            if s.system:
                step("system", target, lambda t=target: self.files(t, "system", s.system, s.system_excludes))  # type: ignore[misc]
        self.steps.chore("drive ledger", self.record_drive)
        if all(self.fresh.get(r) for r in (s.offroom_repo, s.local_repo)):
            (s.state_dir / RESTORED).unlink(missing_ok=True)  # a full backup on the new timeline is in both
        metrics.write(s.textfile_dir / "backup.prom", self.steps.results)
        return self.steps.results


def _checked(check: Callable[[], T]) -> T:
    """A check of a copy already made: its failure is a VerifyError (the copy does not count)."""
    try:
        return check()
    except VerifyError:
        raise
    except BackupError as e:
        raise VerifyError(str(e)) from e


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
