"""`lpse-backup run`: one backup run of every dataset to every target, with progress output.

Each dataset/target pair is tried on its own: an unplugged drive fails the portable copies and
nothing else, a dead S3 endpoint fails the off-room copies and nothing else. The run prints
what it did, writes the metrics textfile (a failed pair keeps the time of its last good copy)
and exits 1 if any pair failed, so the timer's unit shows failed too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lpse_backup import metrics
from lpse_backup.database import PgBackRest
from lpse_backup.documents import BackupError, Restic
from lpse_backup.dump import dump_database
from lpse_backup.media import Drive, Ledger, MediaError, check_drive
from lpse_backup.offroom import Offroom, OffroomError, client
from lpse_backup.portable import sync_repository


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    textfile: Path
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

    @classmethod
    def load(cls, path: Path) -> Settings:
        try:
            d = tomllib.loads(path.read_text())
            s3 = d["offroom"]
            secret = Path(s3["secret_key_file"]).read_text().strip()
            return cls(
                state_dir=Path(d["state_dir"]),
                textfile=Path(d["textfile"]),
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
            )
        except (OSError, KeyError, ValueError, tomllib.TOMLDecodeError) as e:
            raise BackupError(f"{path}: {e.__class__.__name__}: {e} — see backup/README.md for the settings") from e


class Run:
    def __init__(self, s: Settings, out: Callable[[str], None] = print) -> None:
        self.s = s
        self.out = out
        self.results: list[metrics.Result] = []

    def step(self, dataset: str, target: str, action: Callable[[], int]) -> None:
        """Run one dataset/target pair; record its result; never let it stop the others."""
        self.out(f"[{dataset} -> {target}] ...")
        t0 = time.monotonic()
        try:
            size = action()
        except (BackupError, MediaError, OffroomError) as e:
            self.out(f"[{dataset} -> {target}] FAILED: {e}")
            ok, size = False, 0
        else:
            self.out(f"[{dataset} -> {target}] ok, {size / 2**20:.1f} MiB in {time.monotonic() - t0:.1f} s")
            ok = True
        self.results.append(metrics.Result(dataset, target, ok, time.time(), time.monotonic() - t0, size))

    def drive(self) -> Drive:
        return check_drive(self.s.drive_mountpoint, self.s.rota)

    def restic(self, target: str) -> Restic:
        if target == "s3":
            o = self.s.offroom
            env = {"AWS_ACCESS_KEY_ID": o.access_key, "AWS_SECRET_ACCESS_KEY": o.secret_key}
            if o.ca_file:
                env["RESTIC_CACERT"] = o.ca_file
            return Restic(f"s3:{o.endpoint}/{o.bucket}/documents", self.s.restic_password_file, env)
        return Restic(str(self.drive().mountpoint / "documents"), self.s.restic_password_file)

    def documents(self, target: str) -> int:
        repo = self.restic(target)
        repo.init()
        return repo.backup(list(self.s.documents), tags=["documents"]).bytes_added

    def all(self) -> list[metrics.Result]:
        s = self.s
        br = PgBackRest(s.pgbackrest_config, s.stanza)
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

        self.step("database", "s3", lambda: br.backup(s.offroom_repo).repo_bytes)
        self.step("database", "local", lambda: br.backup(s.local_repo).repo_bytes)
        self.step(
            "database", "portable", lambda: sync_repository(s.local_repo_path, self.drive(), "pgbackrest").bytes_copied
        )

        dumps = s.state_dir / "dumps"
        dumps.mkdir(parents=True, exist_ok=True)
        made: list[Path] = []

        def dump_local() -> int:
            d = dump_database(s.dbname, dumps, list(s.age_recipients), pg_dump=s.pg_dump)
            made.append(d.path)
            return d.bytes

        def dump_to(target: str) -> int:
            if not made:
                raise BackupError("no dump was made in this run")
            if target == "s3":
                client(s.offroom).upload_file(str(made[0]), s.offroom.bucket, f"dumps/{made[0].name}")
            else:
                sync_repository(dumps, self.drive(), "dumps")
            return made[0].stat().st_size

        self.step("dump", "local", dump_local)
        self.step("dump", "s3", lambda: dump_to("s3"))
        self.step("dump", "portable", lambda: dump_to("portable"))
        self.step("documents", "s3", lambda: self.documents("s3"))
        self.step("documents", "portable", lambda: self.documents("portable"))

        try:
            label = self.drive().label
            for r in self.results:
                if r.target == "portable" and r.success:
                    ledger.add_snapshot(label, r.dataset, now.isoformat(timespec="seconds"), now)
        except MediaError:
            pass
        ledger.save()
        metrics.write(s.textfile, self.results)
        return self.results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lpse-backup", description="backups of the SPSE server")
    p.add_argument("command", choices=["run"])
    p.add_argument("--config", type=Path, default=Path("/etc/lpse-backup/config.toml"))
    args = p.parse_args(argv)
    try:
        settings = Settings.load(args.config)
    except BackupError as e:
        print(f"lpse-backup: {e}", file=sys.stderr)
        return 2
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    results = Run(settings).all()
    failed = [f"{r.dataset}->{r.target}" for r in results if not r.success]
    print(
        f"lpse-backup: {len(results) - len(failed)} of {len(results)} copies made"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
