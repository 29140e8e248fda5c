"""The nightly logical dump of the SPSE database, encrypted with age: a copy that stock tools
alone restore (`age -d -i key | pg_restore`), beside pgBackRest's physical backups.

The dump streams `pg_dump -Fc` (already compressed) through `age` for the recipients' public
keys: no plaintext touches the disk. The ciphertext is hashed as it is written, written as
`<name>.partial`, synced, then read back whole from the disk (not the page cache) and compared
with that hash; only then is it renamed. A killed or failed run never leaves a file that looks
like a good dump, and never replaces one. Every copy (the drive, the bucket) is read back and
compared with the same hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lpse_backup import clock
from lpse_backup.errors import BackupError, VerifyError


@dataclass(frozen=True)
class Dump:
    path: Path
    bytes: int
    sha256: str


def sha256(path: Path, from_disk: bool = False) -> str:
    """SHA-256 of a file; `from_disk` first drops its cached pages, so the bytes come from the
    device itself (a write the device lost is caught)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        if from_disk:
            os.fsync(f.fileno())
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fsync_path(path: Path | str) -> None:
    """Flush a file or a directory (its entries: a rename is durable only once its directory is)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_back(path: Path, expected: str, what: str) -> None:
    got = sha256(path, from_disk=True)
    if got != expected:
        raise VerifyError(f"{what} {path} reads back differently from what was written (SHA-256 {got[:12]}…)")


def dump_database(
    dbname: str,
    out_dir: Path,
    recipients: Sequence[str],
    pg_dump: Sequence[str] = ("pg_dump",),
    env: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
) -> Dump:
    """pg_dump -Fc | age -r ... into out_dir/<dbname>-<UTC time>.dump.age, atomically, read back."""
    if not recipients:
        raise BackupError("no age recipients: set backup_age_recipients (public keys, age1...) in the inventory")
    final = out_dir / f"{dbname}-{clock.stamp(now or clock.now())}.dump.age"
    partial = final.with_name(final.name + ".partial")
    age_cmd = ["age", "--encrypt"] + [a for r in recipients for a in ("-r", r)]
    run_env = dict(os.environ) | dict(env or {})
    h = hashlib.sha256()
    try:
        with (
            subprocess.Popen(
                [*pg_dump, "--format=custom", "--dbname", dbname],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=run_env,
            ) as dump,
            subprocess.Popen(
                age_cmd, stdin=dump.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=run_env
            ) as enc,
        ):
            assert dump.stdout is not None and enc.stdout is not None
            dump.stdout.close()  # age holds the read end now
            with partial.open("wb") as f:
                for chunk in iter(lambda: enc.stdout.read(1 << 20), b""):  # type: ignore[union-attr]
                    h.update(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            enc.wait()
            dump_err = dump.stderr.read().decode() if dump.stderr else ""
            enc_err = enc.stderr.read().decode() if enc.stderr else ""
            dump.wait()
        if dump.returncode != 0:
            raise BackupError(f"pg_dump of {dbname} failed (exit {dump.returncode}): {dump_err.strip()[-500:]}")
        if enc.returncode != 0:
            raise BackupError(f"age could not encrypt the dump of {dbname}: {enc_err.strip()[-500:]}")
        digest = h.hexdigest()
        read_back(partial, digest, "the dump")
        partial.replace(final)
        fsync_path(out_dir)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return Dump(final, final.stat().st_size, digest)
