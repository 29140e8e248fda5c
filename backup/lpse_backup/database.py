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

import datetime as dt
import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lpse_backup.errors import BackupError

NIGHT = "lpse-night"


def psql(query: str, dbname: str, port: int | None = None, host: str | None = None) -> str:
    """One value from a query, as the postgres user."""
    cmd = ["runuser", "-u", "postgres", "--", "psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", dbname]
    cmd += ["-p", str(port)] if port else []
    cmd += ["-h", host] if host else []
    res = subprocess.run([*cmd, "-c", query], capture_output=True, text=True)
    if res.returncode != 0:
        raise BackupError(f"psql on {dbname}{f' (port {port})' if port else ''} failed: {res.stderr.strip()[-300:]}")
    return res.stdout.strip()


@dataclass(frozen=True)
class BackupSet:
    label: str
    type: str
    repo: int
    started: int
    stopped: int
    size_bytes: int
    repo_bytes: int
    # The job's clock when it took the backup (annotation lpse-night); its stop time if none.
    night: float = 0.0

    @property
    def is_full(self) -> bool:
        return self.type == "full"


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

    def backup(self, repo: int, kind: str, night: dt.datetime) -> BackupSet:
        """A backup of `kind` (full, diff, incr) into `repo`, annotated with the job's clock;
        pgBackRest then expires what the repository's retention no longer keeps (fulls beyond
        repo-retention-full, with their increments and WAL)."""
        self.run(f"--repo={repo}", f"--type={kind}", f"--annotation={NIGHT}={night.isoformat()}", "backup")
        return self.backups(repo)[-1]

    def next_kind(self, repo: int, now: dt.datetime, full_every_days: float, between: str) -> str:
        """`full` when the repository holds no full backup, or its newest full was taken
        `full_every_days` or more ago by the job's clock; `between` (incr or diff) otherwise."""
        fulls = [b for b in self.backups(repo) if b.is_full]
        if not fulls:
            return "full"
        age_days = (now.timestamp() - fulls[-1].night) / 86400
        return "full" if age_days >= full_every_days - 0.01 else between  # a night run a bit early counts

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
                night = (b.get("annotation") or {}).get(NIGHT)
                out.append(
                    BackupSet(
                        b["label"],
                        b["type"],
                        int(b["database"]["repo-key"]),
                        int(b["timestamp"]["start"]),
                        int(b["timestamp"]["stop"]),
                        int(b["info"]["size"]),
                        int(b["info"]["repository"]["delta"]),
                        dt.datetime.fromisoformat(night).timestamp() if night else float(b["timestamp"]["stop"]),
                    )
                )
        return out

    def verify(self, repo: int, repo_path: Path | None = None) -> None:
        """Checksums of every backup file and WAL segment in the repository (or in the copy of it
        at `repo_path`). pgBackRest 2.45 exits 0 even when it finds damaged files (seen here: a
        flipped byte in a backup file gave exit 0): only its report tells, so it is read."""
        where = [f"--repo{repo}-path={repo_path}"] if repo_path else []
        report = self.run(f"--repo={repo}", *where, "--output=text", "verify")
        if "status: error" in report:
            detail = " ".join(ln.strip() for ln in report.splitlines() if ln.startswith("  "))
            raise BackupError(
                f"pgbackrest verify found damage in repo{repo}{f' at {repo_path}' if repo_path else ''}: {detail[:600]}"
            )

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
