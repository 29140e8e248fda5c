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
from lpse_lab import radosgw
from lpse_lab.pki import ensure_server_cert

STATE = Path(os.environ.get("LPSE_RADOSGW_DIR", "/var/tmp/lpse-radosgw"))
PG_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="session")
def s3_ca() -> Path:
    return STATE.parent / "lpse-radosgw-pki" / "lab-ca.crt"


@pytest.fixture(scope="session")
def s3_server(s3_ca: Path) -> Iterator[radosgw.S3Server]:
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
