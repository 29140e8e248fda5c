"""The nightly logical dump of the SPSE database, encrypted with age: a copy that stock tools
alone restore (`age -d -i key | pg_restore`), beside pgBackRest's physical backups.

The dump streams `pg_dump -Fc` (already compressed) straight into `age` for the recipients' public
keys: no plaintext touches the disk. It is written as `<name>.partial` and renamed only when
both programs succeeded and the file is synced, so a killed or failed run never leaves a file
that looks like a good dump, and never replaces one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lpse_backup.documents import BackupError


@dataclass(frozen=True)
class Dump:
    path: Path
    bytes: int
    sha256: str


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dump_database(
    dbname: str,
    out_dir: Path,
    recipients: Sequence[str],
    pg_dump: Sequence[str] = ("pg_dump",),
    env: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
) -> Dump:
    """pg_dump -Fc | age -r ... into out_dir/<dbname>-<UTC time>.dump.age, atomically."""
    if not recipients:
        raise BackupError("no age recipients: set backup_age_recipients (public keys, age1...) in the inventory")
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    final = out_dir / f"{dbname}-{stamp}.dump.age"
    partial = final.with_name(final.name + ".partial")
    age_cmd = ["age", "--encrypt"] + [a for r in recipients for a in ("-r", r)] + ["-o", str(partial)]
    run_env = dict(os.environ) | dict(env or {})
    try:
        with subprocess.Popen(
            [*pg_dump, "--format=custom", "--dbname", dbname],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=run_env,
        ) as dump:
            assert dump.stdout is not None
            enc = subprocess.run(age_cmd, stdin=dump.stdout, capture_output=True, env=run_env)
            dump.stdout.close()
            dump_err = dump.stderr.read().decode() if dump.stderr else ""
            dump.wait()
        if dump.returncode != 0:
            raise BackupError(f"pg_dump of {dbname} failed (exit {dump.returncode}): {dump_err.strip()[-500:]}")
        if enc.returncode != 0:
            raise BackupError(f"age could not encrypt the dump of {dbname}: {enc.stderr.decode().strip()[-500:]}")
        with partial.open("rb") as f:
            os.fsync(f.fileno())
        partial.replace(final)
        dir_fd = os.open(out_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return Dump(final, final.stat().st_size, sha256(final))
