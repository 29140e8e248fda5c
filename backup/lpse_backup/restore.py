"""`lpse-backup restore`: bring this server's database and documents back from a backup target.

For a fresh server after a loss (playbooks/restore.yml provisions it first) or for the server
itself. Nothing is deleted: the current data directory is moved aside (`<pg_data>.before-restore-
<time>`), documents are restored over the document store (restic overwrites files that differ),
and /etc and the SPSE configuration go to a side directory for the operator to compare, never over
this host's own. The restored database does not archive WAL (so a copy never writes into the
repository it came from); once this server is the SPSE server, `playbooks/site.yml` turns
archiving back on, and the next nightly run takes full backups (the restore leaves a state file
that asks for them). The command's last line says so.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from lpse_backup.database import psql
from lpse_backup.documents import Restic
from lpse_backup.errors import BackupError
from lpse_backup.metrics import Result
from lpse_backup.nightly import RESTORED
from lpse_backup.portable import LATEST
from lpse_backup.settings import Settings
from lpse_backup.steps import Outcome, Steps
from lpse_backup.targets import Targets


def _systemctl(action: str, unit: str) -> None:
    res = subprocess.run(["systemctl", action, unit], capture_output=True, text=True)
    if res.returncode != 0:
        raise BackupError(f"systemctl {action} {unit} failed: {res.stderr.strip()[-300:]}")


def snapshot_at(repo: Restic, tag: str, at: dt.datetime | None) -> dict:
    """The snapshot to restore: the newest of `tag`, or the newest taken at or before `at`."""
    snap = repo.latest(tag, at)
    if snap is None:
        raise BackupError(f"no {tag} snapshot{f' at or before {at}' if at else ''} in {repo.where}")
    return snap


def restore_server(
    s: Settings, source: str, at: dt.datetime | None, yes: bool, out: Callable[[str], None]
) -> list[Result]:
    """The database, the documents and (aside) the system configuration, each a step: one that
    fails is said and the others are still restored."""
    t = Targets(s)
    if not yes:
        print(
            f"This stops {s.pg_service}, moves {s.pg_data} aside and restores the database and the documents "
            f"from {source}{f' as of {at}' if at else ''}. Type 'restore' to go on: ",
            end="",
            flush=True,
        )
        if sys.stdin.readline().strip() != "restore":
            raise BackupError("not confirmed: nothing was changed")
    repo_path = t.drive().mountpoint / LATEST if source == "portable" else None
    repo = t.repo(source)
    with t.documents(source) as files:  # the drive held open for the whole restore
        documents = snapshot_at(files, "documents", at)  # before anything is stopped: fail early

        def database() -> Outcome:
            _systemctl("stop", s.pg_service)
            if s.pg_data.exists() and any(s.pg_data.iterdir()):
                aside = s.pg_data.with_name(f"{s.pg_data.name}.before-restore-{dt.datetime.now():%Y%m%dT%H%M%S}")
                try:
                    s.pg_data.rename(aside)
                except OSError as e:
                    raise BackupError(
                        f"could not move {s.pg_data} aside to {aside} ({e.strerror}): is it a mount point of its own? "
                        f"Move what is in it aside by hand (nothing here deletes it), then run the restore again"
                    ) from e
                out(f"the data directory that was here is kept at {aside}")
            s.pg_data.mkdir(mode=0o700, exist_ok=True)
            shutil.chown(s.pg_data, "postgres", "postgres")
            t.br.restore(repo, s.pg_data, target_time=at.isoformat(sep=" ") if at else None, repo_path=repo_path)
            _systemctl("start", s.pg_service)
            deadline = time.monotonic() + 6 * 3600
            while psql("SELECT pg_is_in_recovery()", "postgres") != "f":
                if time.monotonic() > deadline:
                    raise BackupError("the restored database is still recovering after 6 h: see the PostgreSQL log")
                time.sleep(0.5)
            return Outcome(detail=f"{s.pg_service} is running on it")

        def docs() -> Outcome:
            files.restore(documents["id"], Path("/"))  # absolute paths: back where they were
            return Outcome(detail=f"snapshot {documents['short_id']}, over {', '.join(map(str, s.documents))}")

        def system() -> Outcome:
            try:
                snap = snapshot_at(files, "system", at)
            except BackupError as e:
                return Outcome(skipped=True, detail=str(e))
            side = s.state_dir / "restored-system" / snap["short_id"]
            files.restore(snap["id"], side)
            return Outcome(
                detail=f"/etc and the SPSE configuration of the backup are in {side} (this host's own are untouched)"
            )

        steps = Steps(out)
        db = steps.pair("database", source, database, "restore")
        steps.pair("documents", source, docs, "restore")
        if s.system:
            steps.pair("system", source, system, "restore")
        if not db.success:
            out(
                f"The database was NOT restored: {s.pg_service} may be stopped. Fix what the line above says and run "
                "the same `lpse-backup restore` again (the data directory that was here is kept aside, never deleted)."
            )
            return steps.results
        # The next nightly run takes full backups (a new timeline) into every repository.
        (s.state_dir / RESTORED).write_text(f"restored from {source}{f' as of {at}' if at else ''}\n")
        out(
            "WAL archiving is OFF on the restored database, so no backup of it is taken yet (the "
            "WalArchivingOff alert says so until it is on). Once this server is the SPSE server, run "
            "`ansible-playbook -i inventories/<site> playbooks/site.yml --limit <this host>`: it turns archiving on, "
            "and the next `lpse-backup run` takes full backups into every repository."
        )
        return steps.results
