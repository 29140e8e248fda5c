"""lpse-backup's settings: every default in one place, read from the TOML file the backup role
writes (/etc/lpse-backup/config.toml). `lpse-backup check-config FILE` loads a file without
reading its secret files: the role validates the file with it before installing it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lpse_backup.errors import BackupError
from lpse_backup.offroom import Offroom


@dataclass(frozen=True)
class TableCheck:
    """A table the drill compares (rows up to the target time) between the copy and the live DB."""

    table: str
    time_column: str


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    textfile_dir: Path
    drive_mountpoint: Path
    rota: tuple[str, ...]
    offroom: Offroom
    pgbackrest_config: Path
    local_repo_path: Path
    dbname: str
    age_recipients: tuple[str, ...]
    documents: tuple[Path, ...]
    restic_password_file: Path
    rotate_days: int = 7
    stanza: str = "spse"
    offroom_repo: int = 1
    local_repo: int = 2
    pg_dump: tuple[str, ...] = ("runuser", "-u", "postgres", "--", "pg_dump")
    # A full database backup in each repository when its newest full is this many days old
    # (by the job's clock); `between_fulls` (incr or diff) on the other nights.
    full_every_days: float = 7
    between_fulls: str = "incr"
    # restic's compression of the documents: bid files arrive encrypted by the bidders' client,
    # which no compressor shrinks; "off" spares the CPU (2 GB to the drive: 16.0 s against
    # 18.3 s with "auto", benchmarks/backup.py). The system dataset is always "auto".
    documents_compression: str = "off"
    # /etc and the SPSE configuration: restic, in the same repositories as the documents.
    system: tuple[Path, ...] = ()
    # Never in a backup: the backup keys themselves (they would sit next to what they unlock).
    system_excludes: tuple[str, ...] = ()
    # The bucket must lock new versions at least this long (longer than the S3 retention).
    lock_days: int = 400
    # pgbackrest verify of the bucket reads all of it: once every this many days.
    verify_s3_database_days: int = 7
    # Restore drills: throwaway cluster port, scratch space ("": a filesystem other than the
    # database's and the documents' if there is one), room kept free beyond the restored size.
    drill_port: int = 5499
    drill_dir: Path | None = None
    drill_margin_bytes: int = 512 * 2**20
    drill_checks: tuple[TableCheck, ...] = ()
    pg_bin: Path = Path("/usr/lib/postgresql/15/bin")
    pg_data: Path = Path("/var/lib/postgresql/15/main")
    pg_service: str = "postgresql@15-main"
    # The age identity (secret) for drills and restores of the dumps; optional on the server.
    age_identity_file: Path | None = None
    # Retention per target: restic (daily, weekly, monthly) and how many dumps to keep; each
    # drive keeps the copies of its newest `portable_generations` full database backups.
    keep_s3: tuple[int, int, int] = (14, 8, 12)
    keep_portable: tuple[int, int, int] = (7, 4, 3)
    dumps_keep: int = 7
    portable_generations: int = 2
    # Share of the restic data read back and decrypted after each run.
    check_subset: str = "2%"

    @classmethod
    def load(cls, path: Path, read_secrets: bool = True) -> Settings:
        try:
            d = tomllib.loads(path.read_text())
            return cls._from(d, read_secrets)
        except (OSError, KeyError, ValueError, TypeError, tomllib.TOMLDecodeError) as e:
            raise BackupError(f"{path}: {e.__class__.__name__}: {e} — see backup/README.md for the settings") from e

    @classmethod
    def _from(cls, d: dict[str, Any], read_secrets: bool) -> Settings:
        portable, s3, db = d["portable"], d["offroom"], d["database"]
        dump, docs = d["dump"], d["documents"]
        retention, verify = d.get("retention", {}), d.get("verify", {})
        drill, system = d.get("drill", {}), d.get("system", {})
        secret = Path(s3["secret_key_file"]).read_text().strip() if read_secrets else ""
        between = db.get("between_fulls", cls.between_fulls)
        if between not in ("incr", "diff"):
            raise ValueError(f"database.between_fulls must be incr or diff, not {between!r}")
        full_every = float(db.get("full_every_days", cls.full_every_days))
        if full_every <= 0:
            raise ValueError(f"database.full_every_days must be more than 0, not {full_every}")
        compression = docs.get("compression", cls.documents_compression)
        if compression not in ("off", "auto", "max"):
            raise ValueError(f"documents.compression must be off, auto or max, not {compression!r}")
        generations = int(portable.get("generations", cls.portable_generations))
        if generations < 1:
            raise ValueError("portable.generations: keep at least 1 generation on each drive")
        return cls(
            state_dir=Path(d["state_dir"]),
            textfile_dir=Path(d["textfile_dir"]),
            drive_mountpoint=Path(portable["mountpoint"]),
            rota=tuple(portable["rota"]),
            rotate_days=int(portable.get("rotate_days", cls.rotate_days)),
            portable_generations=generations,
            offroom=Offroom(
                s3["endpoint"], s3["bucket"], s3["access_key"], secret, s3.get("region", "default"), s3.get("ca_file")
            ),
            lock_days=int(s3.get("lock_days", cls.lock_days)),
            pgbackrest_config=Path(db["pgbackrest_config"]),
            stanza=db.get("stanza", cls.stanza),
            offroom_repo=int(db.get("offroom_repo", cls.offroom_repo)),
            local_repo=int(db.get("local_repo", cls.local_repo)),
            local_repo_path=Path(db["local_repo_path"]),
            dbname=db["dbname"],
            pg_dump=tuple(db.get("pg_dump", cls.pg_dump)),
            full_every_days=full_every,
            between_fulls=between,
            pg_bin=Path(db.get("pg_bin", cls.pg_bin)),
            pg_data=Path(db.get("pg_data", cls.pg_data)),
            pg_service=db.get("service", cls.pg_service),
            age_recipients=tuple(dump["age_recipients"]),
            age_identity_file=Path(dump["identity_file"]) if dump.get("identity_file") else None,
            documents=tuple(Path(p) for p in docs["paths"]),
            restic_password_file=Path(docs["restic_password_file"]),
            documents_compression=compression,
            system=tuple(Path(p) for p in system.get("paths", [])),
            system_excludes=tuple(system.get("excludes", [])),
            keep_s3=_keep(retention.get("s3", list(cls.keep_s3)), "s3"),
            keep_portable=_keep(retention.get("portable", list(cls.keep_portable)), "portable"),
            dumps_keep=int(retention.get("dumps", cls.dumps_keep)),
            check_subset=str(verify.get("restic_subset", cls.check_subset)),
            verify_s3_database_days=int(verify.get("s3_database_days", cls.verify_s3_database_days)),
            drill_port=int(drill.get("port", cls.drill_port)),
            drill_dir=Path(drill["dir"]) if drill.get("dir") else None,
            drill_margin_bytes=int(float(drill.get("margin_mib", cls.drill_margin_bytes / 2**20)) * 2**20),
            drill_checks=tuple(TableCheck(c["table"], c["time_column"]) for c in drill.get("checks", [])),
        )


def _keep(value: object, target: str) -> tuple[int, int, int]:
    """[daily, weekly, monthly] snapshots to keep, each at least 0, the daily at least 1."""
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) and v >= 0 for v in value)):
        raise ValueError(f"retention.{target} must be [daily, weekly, monthly], e.g. [14, 8, 12], not {value!r}")
    if value[0] < 1:
        raise ValueError(f"retention.{target}: keep at least 1 daily snapshot, or the newest copy could go")
    return (value[0], value[1], value[2])
