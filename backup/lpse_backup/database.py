"""The SPSE database with pgBackRest: physical backups plus continuous WAL archiving, so the
database can be restored to any second between backups (point-in-time recovery).

Repositories (pgbackrest.conf, written by the backup role):
- repo1: the off-room bucket (S3, aes-256-cbc), receives WAL continuously;
- repo2: a local repository on the server, receives WAL continuously and is what gets copied
  to the portable drive. WAL never goes straight to the drive: pgBackRest acknowledges a WAL
  segment only once every repository has it, so an unplugged drive would stall archiving and
  fill pg_wal.
Restores go to a throwaway cluster with archiving off, so a drill never writes into the
stanza it reads from.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lpse_backup.documents import BackupError


@dataclass(frozen=True)
class BackupSet:
    label: str
    type: str
    repo: int
    started: int
    stopped: int
    size_bytes: int
    repo_bytes: int


@dataclass(frozen=True)
class PgBackRest:
    config: Path
    stanza: str = "spse"
    run_as: Sequence[str] = ("runuser", "-u", "postgres", "--")
    timeout_s: float = 6 * 3600

    def run(self, *args: str) -> str:
        cmd = [*self.run_as, "pgbackrest", f"--config={self.config}", f"--stanza={self.stanza}", *args]
        try:
            # errors="replace": with a wrong cipher pass pgBackRest echoes undecryptable bytes
            res = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=self.timeout_s)
        except subprocess.TimeoutExpired as e:
            raise BackupError(f"pgbackrest {args[-1]} took longer than {self.timeout_s:.0f} s") from e
        if res.returncode != 0:
            raise BackupError(f"pgbackrest {' '.join(args)} failed (exit {res.returncode}): {_last_error(res)}")
        return res.stdout

    def stanza_create(self) -> None:
        """Idempotent: an existing stanza that matches the cluster is left as it is."""
        self.run("stanza-create")

    def check(self) -> None:
        """The cluster archives WAL to every repository and the config is sound."""
        self.run("check")

    def backup(self, repo: int, kind: str = "incr") -> BackupSet:
        self.run(f"--repo={repo}", f"--type={kind}", "backup")
        return self.backups(repo)[-1]

    def backups(self, repo: int, repo_path: Path | None = None) -> list[BackupSet]:
        # info exits 0 even when it cannot read the repository; the status code says why.
        where = [f"--repo{repo}-path={repo_path}"] if repo_path else []
        info = json.loads(self.run(f"--repo={repo}", *where, "--output=json", "info"), strict=False)
        out = []
        for stanza in info:
            status = stanza.get("status", {})
            if status.get("code", 0) not in (0, 2):  # 2: no backups yet
                message = " ".join(str(status.get("message", "")).split())[:300]
                raise BackupError(f"pgbackrest cannot read repo{repo} of stanza {self.stanza}: {message}")
            for b in stanza.get("backup", []):
                out.append(
                    BackupSet(
                        b["label"],
                        b["type"],
                        int(b["database"]["repo-key"]),
                        int(b["timestamp"]["start"]),
                        int(b["timestamp"]["stop"]),
                        int(b["info"]["size"]),
                        int(b["info"]["repository"]["delta"]),
                    )
                )
        return out

    def verify(self, repo: int) -> None:
        """Checksums of every backup file and WAL segment in the repository."""
        self.run(f"--repo={repo}", "verify")

    def restore(self, repo: int, pg_path: Path, target_time: str | None = None, repo_path: Path | None = None) -> None:
        """Restore into `pg_path` (empty), to the end of the archive or to `target_time`
        ('YYYY-MM-DD HH:MM:SS+TZ'); the restored cluster will not archive WAL. `repo_path`
        reads the repository from elsewhere (the copy on the portable drive)."""
        args = [f"--repo={repo}", f"--pg1-path={pg_path}", "--archive-mode=off"]
        if repo_path:
            args.append(f"--repo{repo}-path={repo_path}")
        if target_time:
            args += ["--type=time", f"--target={target_time}", "--target-action=promote"]
        self.run(*args, "restore")


def _last_error(res: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in (res.stderr + res.stdout).splitlines() if "ERROR" in ln or "HINT" in ln]
    return " ".join(lines[-3:]) or (res.stderr or res.stdout).strip()[-500:]
