"""`lpse-backup run` end to end on real servers: every dataset to every target, then the same
run with the drive unplugged (the off-room side still done, the run fails, nothing lost); the
status timer's readings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from lpse_backup.database import PgBackRest
from lpse_backup.documents import Restic
from lpse_backup.offroom import Offroom, client
from lpse_lab.radosgw import S3Server

from tests.backup.conftest import ROTA, Cluster, make_drive, plug, unplug

PAIRS = {
    ("database", "s3"), ("database", "local"), ("database", "portable"), ("dump", "local"), ("dump", "s3"),
    ("dump", "portable"), ("documents", "s3"), ("documents", "portable"),
}  # fmt: skip


def toml(d: dict[str, Any]) -> str:
    """The few TOML shapes the job's settings use: scalars, lists, lists of inline tables."""

    def value(v: Any) -> str:
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)

    top = [f"{k} = {value(v)}" for k, v in d.items() if not isinstance(v, dict)]
    tables = [
        f"[{k}]\n" + "".join(f"{kk} = {value(vv)}\n" for kk, vv in v.items())
        for k, v in d.items()
        if isinstance(v, dict)
    ]
    return "\n".join(top) + "\n" + "".join(tables)


def job_config(
    pg: Cluster, br: PgBackRest, o: Offroom, server: S3Server, overrides: dict[str, dict[str, Any]] | None = None
) -> Path:
    base = pg.base
    (base / "docs" / "lelang-1").mkdir(parents=True, exist_ok=True)
    (base / "docs" / "lelang-1" / "penawaran.pdf").write_bytes(b"%PDF penawaran " * 4000)
    for name, text in (("s3.secret", server.secret_key), ("restic.key", "restic-test-key")):
        (base / name).write_text(text)
        (base / name).chmod(0o600)
    if not (base / "age.key").exists():  # a second config for the same cluster keeps its key
        subprocess.run(["age-keygen", "-o", str(base / "age.key")], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(base / "age.key")], check=True, capture_output=True, text=True)
    repo2 = next(ln.split("=", 1)[1] for ln in br.config.read_text().splitlines() if ln.startswith("repo2-path"))
    (base / "media").mkdir(exist_ok=True)
    settings: dict[str, Any] = {
        "state_dir": f"{base}/state",
        "textfile_dir": f"{base}",
        "portable": {"mountpoint": f"{base}/media", "rota": list(ROTA)},
        "offroom": {
            "endpoint": server.endpoint,
            "bucket": o.bucket,
            "access_key": server.access_key,
            "secret_key_file": f"{base}/s3.secret",
            "lock_days": 2,
        },
        "database": {
            "pgbackrest_config": str(br.config),
            "local_repo_path": repo2,
            "dbname": "postgres",
            "pg_dump": ["runuser", "-u", "postgres", "--", "pg_dump", "-h", str(pg.socket_dir)],
        },
        "dump": {"age_recipients": [recipient.stdout.strip()]},
        "documents": {"paths": [f"{base}/docs"], "restic_password_file": f"{base}/restic.key"},
        "retention": {"s3": [14, 8, 12], "portable": [7, 4, 3], "dumps": 1},
        "verify": {"restic_subset": "100%"},
    }
    for section, values in (overrides or {}).items():
        settings[section] = settings.get(section, {}) | values
    conf = base / "job.toml"
    conf.write_text(toml(settings))
    return conf


def lpse_backup(conf: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed `lpse-backup` command, as the timers run it."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "lpse-backup"), *args, "--config", str(conf)],
        capture_output=True,
        text=True,
        timeout=900,
        env=os.environ | (env or {}),
    )


def run_job(conf: Path) -> subprocess.CompletedProcess[str]:
    return lpse_backup(conf, "run")


def metric(prom: Path, name: str, dataset: str, target: str) -> float:
    m = re.search(rf'{name}{{dataset="{dataset}",target="{target}"}} (\S+)', prom.read_text())
    assert m, (name, dataset, target)
    return float(m[1])


def test_one_run_copies_everything_and_an_unplugged_drive_fails_only_the_drive(
    archived: tuple[Cluster, PgBackRest, Offroom], s3_server: S3Server, tmp_path: Path
) -> None:
    pg, br, o = archived
    conf = job_config(pg, br, o, s3_server)
    prom = pg.base / "backup.prom"
    media = pg.base / "media"
    status = pg.base / "status.prom"
    status.write_text('lpse_backup_portable_media_present{label=""} 0.0\n')  # the timer's last word: no drive
    plug(make_drive(tmp_path, "LPSE-BACKUP-A", size_mb=256), media)
    try:
        res = run_job(conf)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "8 of 8 copies made" in res.stdout
        for dataset, target in PAIRS:
            assert metric(prom, "lpse_backup_last_run_success", dataset, target) == 1.0
        assert list((media / "dumps").glob("postgres-*.dump.age"))
        assert (media / "documents" / "config").exists() and (media / "pgbackrest" / "backup").is_dir()
        keys = [obj["Key"] for obj in client(o).list_objects_v2(Bucket=o.bucket)["Contents"]]
        assert any(k.startswith("dumps/postgres-") for k in keys) and any(k.startswith("documents/") for k in keys)
        ledger = (pg.base / "state" / "drives.json").read_text()
        assert "LPSE-BACKUP-A" in ledger and '"dataset": "documents"' in ledger
        good = metric(prom, "lpse_backup_last_success_timestamp_seconds", "documents", "portable")
        # The run has seen the drive: the status file says so at once, not at the status timer's tick.
        assert 'lpse_backup_portable_media_present{label="LPSE-BACKUP-A"} 1.0' in status.read_text()
    finally:
        unplug(media)

    # Asked for by hand, the second night's database backups are full ones, not the schedule's
    # incremental.
    res = lpse_backup(conf, "run", "--full")
    assert res.returncode == 1
    for repo in ("s3", "local"):
        assert re.search(rf"^\[database -> {repo}\] ok .*: full backup \S+F\b", res.stdout, re.M), res.stdout
    assert "Plug in the next drive of the rota" in res.stdout
    assert "5 of 8 copies made; FAILED: database->portable, dump->portable, documents->portable" in res.stdout
    for dataset, target in PAIRS:
        want = 0.0 if target == "portable" else 1.0
        assert metric(prom, "lpse_backup_last_run_success", dataset, target) == want, (dataset, target)
    assert metric(prom, "lpse_backup_last_success_timestamp_seconds", "documents", "portable") == good
    assert not any(media.iterdir()), "something was written to the bare mount point"
    assert 'lpse_backup_portable_media_present{label=""} 0.0' in status.read_text()
    # Retention ran: one dump kept (the newest), one restic snapshot per day in the bucket.
    assert len(list((pg.base / "state" / "dumps").glob("*.dump.age"))) == 1
    env = {"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key}
    s3_docs = Restic(f"s3:{s3_server.endpoint}/{o.bucket}/documents", pg.base / "restic.key", env)
    assert len(s3_docs.snapshots()) == 1


def test_a_broken_config_says_what_is_wrong(tmp_path: Path) -> None:
    conf = tmp_path / "job.toml"
    conf.write_text('state_dir = "/tmp/x"\n')
    res = run_job(conf)
    assert res.returncode == 2
    assert "KeyError" in res.stderr and "see backup/README.md" in res.stderr

    (tmp_path / "s3.secret").write_text("x")
    conf.write_text(
        f"""state_dir = "{tmp_path}/state"
textfile_dir = "{tmp_path}"
[portable]
mountpoint = "{tmp_path}/media"
rota = ["LPSE-BACKUP-A"]
[offroom]
endpoint = "http://127.0.0.1:9"
bucket = "b"
access_key = "k"
secret_key_file = "{tmp_path}/s3.secret"
[database]
pgbackrest_config = "/etc/pgbackrest/pgbackrest.conf"
local_repo_path = "/var/lib/pgbackrest"
dbname = "spse"
[dump]
age_recipients = ["age1example"]
[documents]
paths = ["/var/lib/spse/documents"]
restic_password_file = "{tmp_path}/restic.key"
[retention]
portable = [0, 4, 3]
"""
    )
    res = run_job(conf)
    assert res.returncode == 2 and "keep at least 1 daily snapshot" in res.stderr
    assert not (tmp_path / "state").exists(), "a broken config must stop the run before anything is done"
    conf.write_text(
        conf.read_text()
        .replace("portable = [0, 4, 3]", "portable = [7, 4, 3]")
        .replace("[documents]\n", '[documents]\ncompression = "fast"\n')
    )
    res = run_job(conf)
    assert res.returncode == 2 and "documents.compression must be off, auto or max, not 'fast'" in res.stderr
    assert not (tmp_path / "state").exists()


def test_status_writes_what_it_could_read_and_says_what_it_could_not(
    archived: tuple[Cluster, PgBackRest, Offroom], s3_server: S3Server, tmp_path: Path
) -> None:
    pg, br, o = archived
    conf = job_config(pg, br, o, s3_server)
    prom = pg.base / "status.prom"
    media = pg.base / "media"
    plug(make_drive(tmp_path, "LPSE-BACKUP-B"), media)
    try:
        res = lpse_backup(conf, "status", env={"PGHOST": str(pg.socket_dir)})
        assert res.returncode == 0, res.stdout + res.stderr
        assert res.stdout.startswith("drive: LPSE-BACKUP-B, 0.0 GiB free; WAL waiting to be archived: ")
        assert "lpse_backup_wal_archiving_enabled 1.0" in prom.read_text()

        # PostgreSQL does not answer (stopped, or its socket elsewhere): said, and the drive is still seen.
        res = lpse_backup(conf, "status", env={"PGHOST": str(tmp_path)})
        assert res.returncode == 1, res.stdout + res.stderr
        assert "WAL archive (PostgreSQL's pg_stat_archiver): psql on postgres failed" in res.stdout
        assert res.stdout.rstrip().endswith("drive: LPSE-BACKUP-B, 0.0 GiB free; WAL archive: not read")
        text = prom.read_text()
        assert 'lpse_backup_portable_media_present{label="LPSE-BACKUP-B"} 1.0' in text
        assert "lpse_backup_wal_" not in text  # absent, which BackupStatusMissing reports
    finally:
        unplug(media)
