"""The SPSE document store (bidders' files) with restic: encrypted, deduplicated snapshots to the
off-room bucket and to the portable drive, each a repository of its own with the same key.

Every restic call is bounded and its failure becomes a BackupError that says what to check:
a wrong key, a repository that does not exist yet, a dead S3 endpoint.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lpse_backup.errors import BackupError
from lpse_backup.media import OpenDrive


@dataclass(frozen=True)
class Snapshot:
    id: str
    files_new: int
    files_changed: int
    bytes_added: int
    bytes_processed: int


@dataclass(frozen=True)
class Restic:
    """One restic repository: a local path (the drive) or s3:<endpoint>/<bucket>/<prefix>."""

    repository: str
    password_file: Path
    env: Mapping[str, str] = field(default_factory=dict)  # S3 keys, CA file
    timeout_s: float = 6 * 3600
    drive: OpenDrive | None = field(default=None, repr=False, compare=False)  # the repository is under drive.root

    @property
    def where(self) -> str:
        """The repository as the operator knows it."""
        return self.drive.shown(self.repository) if self.drive else self.repository

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "AWS_"))}
        env |= dict(self.env)
        env |= {"RESTIC_REPOSITORY": self.repository, "RESTIC_PASSWORD_FILE": str(self.password_file)}
        return env

    def _restic(self, args: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                ["restic", "--no-cache", *args],
                capture_output=True,
                text=True,
                env=self._env(),
                timeout=self.timeout_s,
                pass_fds=(self.drive.fd,) if self.drive else (),
            )
        except subprocess.TimeoutExpired as e:
            raise BackupError(f"restic {args[0]} on {self.where} took longer than {self.timeout_s:.0f} s") from e

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = self._restic(args)
        if res.returncode != 0 and "already locked" in res.stderr:
            # A run cut short (killed, its drive pulled) leaves its lock behind. `restic unlock`
            # removes only stale locks (their process gone, or 30 min without a refresh), so a
            # lock a live restic holds still stops this command, with restic's own message.
            self._restic(("unlock",))
            res = self._restic(args)
        if check and res.returncode != 0:
            raise self._explain(args[0], res.stderr)
        return res

    def _explain(self, what: str, stderr: str) -> BackupError:
        err = stderr.strip()
        if "wrong password" in err:
            return BackupError(
                f"the restic key does not open {self.where}: the vault's backup_restic_password is not the "
                f"key this repository was made with. Nothing was written."
            )
        if "does not exist" in err or "Is there a repository at the following location?" in err:
            return BackupError(f"no restic repository at {self.where} yet: `lpse-backup init` makes it")
        if "connection refused" in err or "no such host" in err or "i/o timeout" in err:
            return BackupError(f"cannot reach {self.where}: {err.splitlines()[-1]} (is the S3 endpoint up?)")
        return BackupError(f"restic {what} on {self.where} failed: {err[-800:]}")

    def exists(self) -> bool:
        res = self.run("cat", "config", check=False)
        if res.returncode == 0:
            return True
        if "wrong password" in res.stderr:
            raise self._explain("cat", res.stderr)
        if "Is there a repository" in res.stderr or "does not exist" in res.stderr:
            return False
        raise self._explain("cat", res.stderr)

    def init(self) -> bool:
        """Make the repository unless it exists; True if it was made now."""
        if self.exists():
            return False
        self.run("init")
        return True

    def backup(
        self,
        paths: Iterable[Path],
        tags: Iterable[str] = (),
        excludes: Iterable[str] = (),
        when: dt.datetime | None = None,
        compression: str = "auto",
    ) -> Snapshot:
        """A snapshot of `paths`, dated `when` (the job's clock, which retention reads) if given."""
        args = ["backup", "--json", "--one-file-system", "--compression", compression]
        if when is not None:  # restic reads this as local time
            args += ["--time", when.astimezone().strftime("%Y-%m-%d %H:%M:%S")]
        for t in tags:
            args += ["--tag", t]
        for x in excludes:
            args += ["--exclude", x]
        res = self.run(*args, *map(str, paths))
        summary = next(
            (m for m in map(json.loads, filter(None, res.stdout.splitlines())) if m.get("message_type") == "summary"),
            None,
        )
        if summary is None:
            raise BackupError(f"restic backup to {self.where} ended without a summary: {res.stdout[-500:]}")
        return Snapshot(
            summary["snapshot_id"],
            summary["files_new"],
            summary["files_changed"],
            summary["data_added"],
            summary["total_bytes_processed"],
        )

    def check(self, read_data_subset: str = "5%") -> None:
        """Repository structure, plus reading back (and decrypting) a subset of the data."""
        self.run("check", f"--read-data-subset={read_data_subset}")

    def forget(self, daily: int, weekly: int, monthly: int) -> None:
        """Apply the retention and prune; restic keeps the newest snapshot whatever the policy."""
        self.run("forget", "--prune", f"--keep-daily={daily}", f"--keep-weekly={weekly}", f"--keep-monthly={monthly}")

    def snapshots(self) -> list[dict]:
        return list(json.loads(self.run("snapshots", "--json").stdout or "[]"))

    def latest(self, tag: str, at: dt.datetime | None = None) -> dict | None:
        """The newest snapshot with `tag` (taken at or before `at`, if given), or None."""
        snaps = [s for s in self.snapshots() if tag in (s.get("tags") or [])]
        if at:
            snaps = [s for s in snaps if dt.datetime.fromisoformat(s["time"]) <= at]
        return max(snaps, key=lambda s: dt.datetime.fromisoformat(s["time"]), default=None)

    def restore(self, snapshot: str, target: Path) -> None:
        self.run("restore", snapshot, "--target", str(target))
