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
    # Retention per target: restic (daily, weekly, monthly) and how many dumps to keep.
    keep_s3: tuple[int, int, int] = (14, 8, 12)
    keep_portable: tuple[int, int, int] = (7, 4, 3)
    dumps_keep: int = 7
    # Share of the restic data read back and decrypted after each run.
    check_subset: str = "2%"

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
                keep_s3=_keep(d.get("retention", {}).get("s3", [14, 8, 12]), "s3"),
                keep_portable=_keep(d.get("retention", {}).get("portable", [7, 4, 3]), "portable"),
                dumps_keep=int(d.get("retention", {}).get("dumps", 7)),
                check_subset=str(d.get("verify", {}).get("restic_subset", "2%")),
            )
        except (OSError, KeyError, ValueError, tomllib.TOMLDecodeError) as e:
            raise BackupError(f"{path}: {e.__class__.__name__}: {e} — see backup/README.md for the settings") from e


def _keep(value: object, target: str) -> tuple[int, int, int]:
    """[daily, weekly, monthly] snapshots to keep, each at least 0, the daily at least 1."""
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) and v >= 0 for v in value)):
        raise ValueError(f"retention.{target} must be [daily, weekly, monthly], e.g. [14, 8, 12], not {value!r}")
    if value[0] < 1:
        raise ValueError(f"retention.{target}: keep at least 1 daily snapshot, or the newest copy could go")
    return (value[0], value[1], value[2])


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
        # Checked again before every write to it: a drive can be pulled out in the middle of a run.
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
        """Snapshot, read a subset back (a copy that does not decrypt is not a copy), then apply
        the target's retention (restic always keeps the newest snapshot)."""
        repo = self.restic(target)
        repo.init()
        added = repo.backup(list(self.s.documents), tags=["documents"]).bytes_added
        repo.check(self.s.check_subset)
        repo.forget(*(self.s.keep_s3 if target == "s3" else self.s.keep_portable))
        return added

    def database(self, br: PgBackRest, repo: int) -> int:
        """Back up to one pgBackRest repository, then verify its checksums."""
        size = br.backup(repo).repo_bytes
        br.verify(repo)
        return size

    def prune_dumps(self, dumps: Path) -> None:
        """Keep the newest `dumps_keep` dumps (at least the one just made); the drive mirrors this."""
        for old in sorted(dumps.glob("*.dump.age"))[: -max(1, self.s.dumps_keep)]:
            old.unlink()

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

        self.step("database", "s3", lambda: self.database(br, s.offroom_repo))
        self.step("database", "local", lambda: self.database(br, s.local_repo))
        self.step(
            "database", "portable", lambda: sync_repository(s.local_repo_path, self.drive(), "pgbackrest").bytes_copied
        )

        dumps = s.state_dir / "dumps"
        dumps.mkdir(parents=True, exist_ok=True)
        made: list[Path] = []

        def dump_local() -> int:
            d = dump_database(s.dbname, dumps, list(s.age_recipients), pg_dump=s.pg_dump)
            made.append(d.path)
            self.prune_dumps(dumps)
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
