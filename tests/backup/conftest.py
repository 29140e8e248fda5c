"""Real servers for the backup tests, started here: Ceph radosgw on loopback (the off-room S3,
plain HTTP and HTTPS with a test CA) and throwaway PostgreSQL 15 clusters."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lpse_backup.database import PgBackRest
from lpse_backup.offroom import Offroom, ensure_bucket
from lpse_lab import radosgw
from lpse_lab.pki import ensure_server_cert
from lpse_lab.radosgw import S3Server

STATE = Path(os.environ.get("LPSE_RADOSGW_DIR", "/var/tmp/lpse-radosgw"))
PG_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="session")
def s3_ca() -> Path:
    return STATE.parent / "lpse-radosgw-pki" / "lab-ca.crt"


@pytest.fixture(scope="package")
def s3_server(s3_ca: Path) -> Iterator[radosgw.S3Server]:
    # Package scope: stopped when the backup tests are done, not at the end of the session.
    # "localhost": pgBackRest checks the certificate's DNS names, not IP addresses.
    crt, key = ensure_server_cert(s3_ca.parent, "localhost", "127.0.0.1")
    try:
        server = radosgw.start(STATE, "127.0.0.1", 7480, tls=(7443, crt, key))
    except radosgw.RadosgwError as e:
        pytest.fail(f"could not start the radosgw test server: {e}")
    yield server
    radosgw.stop(STATE)


@dataclass(frozen=True)
class Cluster:
    """A PostgreSQL 15 cluster run by user postgres, reached over its own socket directory."""

    base: Path

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base / "sock"

    def as_postgres(self, *cmd: str, stdin: bytes | None = None) -> bytes:
        res = subprocess.run(["runuser", "-u", "postgres", "--", *cmd], input=stdin, capture_output=True)
        assert res.returncode == 0, res.stderr.decode()
        return res.stdout

    def sql(self, db: str, query: str) -> str:
        return self.as_postgres("psql", "-h", str(self.socket_dir), "-d", db, "-Atc", query).decode().strip()

    def pg_dump(self) -> tuple[str, ...]:
        return ("runuser", "-u", "postgres", "--", "pg_dump", "-h", str(self.socket_dir))

    def start(self) -> None:
        log = self.base / "postgres.log"
        self.as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(log), "-w", "-t", "120", "start")

    def stop(self) -> None:
        # immediate: a throwaway cluster need not wait for its archiver
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
        )


def new_cluster(settings: str = "", initdb: bool = True) -> Cluster:
    """A directory owned by postgres; with initdb, a cluster that listens on its socket only."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail("PostgreSQL 15 server binaries are missing: apt-get install postgresql-15")
    base = Path("/var/tmp") / f"lpse-pgtest-{uuid.uuid4().hex[:8]}"
    (base / "sock").mkdir(parents=True, mode=0o755)
    base.chmod(0o755)
    for d in (base, base / "sock"):
        shutil.chown(d, "postgres", "postgres")
    c = Cluster(base)
    if initdb:
        c.as_postgres(str(PG_BIN / "initdb"), "-D", str(c.data), "-A", "trust", "--no-sync")
        with (c.data / "postgresql.conf").open("a") as f:
            f.write(f"listen_addresses = ''\nunix_socket_directories = '{c.socket_dir}'\nfsync = off\n{settings}\n")
    return c


def remove_cluster(c: Cluster) -> None:
    c.stop()
    shutil.rmtree(c.base, ignore_errors=True)


# --- portable drives: labelled ext4 images on loop devices ------------------------------------

ROTA = ("LPSE-BACKUP-A", "LPSE-BACKUP-B")


def make_drive(tmp: Path, label: str, size_mb: int = 32) -> Path:
    image = tmp / f"{label}.img"
    subprocess.run(["truncate", "-s", f"{size_mb}M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-L", label, str(image)], check=True)
    return image


def plug(image: Path, mp: Path) -> None:
    subprocess.run(["mount", "-o", "loop", str(image), str(mp)], check=True)


def unplug(mp: Path) -> None:
    subprocess.run(["umount", str(mp)], check=True)


@pytest.fixture()
def mountpoint(tmp_path: Path) -> Iterator[Path]:
    """Where the drive goes; a bare directory until something is plugged in."""
    if os.geteuid() != 0:
        pytest.fail("the portable media tests mount loop devices: run them as root (scripts/test does)")
    mp = tmp_path / "media"
    mp.mkdir()
    yield mp
    if os.path.ismount(mp):
        unplug(mp)


# --- a cluster archiving WAL with pgBackRest to the bucket (repo1) and a local repository (repo2)


def write_config(base: Path, server: S3Server, bucket: str, ca: Path, pg: Cluster) -> Path:
    conf = base / "pgbackrest.conf"
    for d in ("spool", "log", "lock", "repo-local"):
        (base / d).mkdir()
    host_port = server.tls_endpoint.removeprefix("https://").split(":")
    conf.write_text(
        f"""[global]
repo1-type=s3
repo1-s3-endpoint=localhost
repo1-storage-port={host_port[1]}
repo1-s3-bucket={bucket}
repo1-s3-key={server.access_key}
repo1-s3-key-secret={server.secret_key}
repo1-s3-region={server.region}
repo1-s3-uri-style=path
repo1-storage-ca-file={ca}
repo1-path=/pgbackrest
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass={uuid.uuid4().hex}
repo1-retention-full=2
repo2-path={base}/repo-local
repo2-cipher-type=aes-256-cbc
repo2-cipher-pass={uuid.uuid4().hex}
repo2-retention-full=2
archive-async=y
repo1-bundle=y
repo2-bundle=y
spool-path={base}/spool
log-path={base}/log
lock-path={base}/lock
start-fast=y
[spse]
pg1-path={pg.data}
pg1-socket-path={pg.socket_dir}
"""
    )
    conf.chmod(0o600)
    return conf


@pytest.fixture(scope="module")
def archived(s3_server: S3Server, s3_ca: Path) -> Iterator[tuple[Cluster, PgBackRest, Offroom]]:
    o = Offroom(s3_server.endpoint, f"lpse-pg-{uuid.uuid4().hex[:8]}", s3_server.access_key, s3_server.secret_key)
    ensure_bucket(o, lock_days=2)
    pg = new_cluster(initdb=False)
    ca = pg.base / "s3-ca.crt"  # pgBackRest runs as postgres: a readable copy of the test CA
    shutil.copyfile(s3_ca, ca)
    conf = write_config(pg.base, s3_server, o.bucket, ca, pg)
    for p in [conf, *pg.base.iterdir()]:
        shutil.chown(p, "postgres", "postgres")
    pg.as_postgres("/usr/lib/postgresql/15/bin/initdb", "-D", str(pg.data), "-A", "trust", "--no-sync")
    with (pg.data / "postgresql.conf").open("a") as f:
        f.write(
            f"listen_addresses = ''\nunix_socket_directories = '{pg.socket_dir}'\nfsync = off\n"
            f"archive_mode = on\nwal_level = replica\narchive_timeout = 5\n"
            f"archive_command = 'pgbackrest --config={conf} --stanza=spse archive-push %p'\n"
        )
    pg.start()
    br = PgBackRest(conf)
    try:
        br.stanza_create()
        br.check()
        pg.sql(
            "postgres", "CREATE TABLE penawaran (id serial primary key, nilai numeric, at timestamptz default now())"
        )
        yield pg, br, o
    finally:
        remove_cluster(pg)
