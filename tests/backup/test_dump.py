"""The age-encrypted logical dump against a real PostgreSQL 15 cluster started by the test,
restored with stock tools only (age, pg_restore)."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lpse_backup.documents import BackupError
from lpse_backup.dump import dump_database

PG_BIN = Path("/usr/lib/postgresql/15/bin")
MARKER = "PENAWARAN-RAHASIA-PT-MAJU-JAYA"


@dataclass(frozen=True)
class Cluster:
    socket_dir: Path

    def as_postgres(self, *cmd: str, stdin: bytes | None = None) -> bytes:
        res = subprocess.run(["runuser", "-u", "postgres", "--", *cmd], input=stdin, capture_output=True)
        assert res.returncode == 0, res.stderr.decode()
        return res.stdout

    def sql(self, db: str, query: str) -> str:
        return self.as_postgres("psql", "-h", str(self.socket_dir), "-d", db, "-Atc", query).decode().strip()

    def pg_dump(self) -> tuple[str, ...]:
        return ("runuser", "-u", "postgres", "--", "pg_dump", "-h", str(self.socket_dir))


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if not (PG_BIN / "initdb").exists():
        pytest.fail("PostgreSQL 15 server binaries are missing: apt-get install postgresql-15")
    base = Path("/var/tmp") / f"lpse-pgtest-{uuid.uuid4().hex[:8]}"
    base.mkdir(mode=0o755)
    shutil.chown(base, "postgres", "postgres")
    c = Cluster(base)
    c.as_postgres(str(PG_BIN / "initdb"), "-D", str(base / "data"), "-A", "trust", "--no-sync")
    opts = f"-k {base} -c listen_addresses='' -c fsync=off"
    c.as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(base / "data"), "-o", opts, "-l", str(base / "log"), "-w", "start")
    try:
        c.as_postgres("createdb", "-h", str(base), "spse")
        c.sql(
            "spse",
            "CREATE TABLE penawaran (id serial primary key, lelang int, penyedia text, nilai numeric);"
            f"INSERT INTO penawaran (lelang, penyedia, nilai) SELECT g % 50, '{MARKER}-' || g, g * 1000.5 "
            "FROM generate_series(1, 20000) g;",
        )
        yield c
    finally:
        c.as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(base / "data"), "-m", "immediate", "stop")
        shutil.rmtree(base)


@pytest.fixture()
def age_key(tmp_path: Path) -> tuple[Path, str]:
    key = tmp_path / "age.key"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True).stdout
    return key, recipient.strip()


def test_the_dump_is_ciphertext_and_restores_with_stock_tools(
    cluster: Cluster, tmp_path: Path, age_key: tuple[Path, str]
) -> None:
    key, recipient = age_key
    out = tmp_path / "dumps"
    out.mkdir()
    dump = dump_database("spse", out, [recipient], pg_dump=cluster.pg_dump())
    assert dump.path.name.startswith("spse-") and dump.path.name.endswith(".dump.age")
    raw = dump.path.read_bytes()
    assert raw.startswith(b"age-encryption.org/v1") and MARKER.encode() not in raw
    assert len(raw) == dump.bytes
    assert not list(out.glob("*.partial"))

    cluster.as_postgres("createdb", "-h", str(cluster.socket_dir), "spse_restored")
    plain = subprocess.run(["age", "--decrypt", "-i", str(key), str(dump.path)], check=True, capture_output=True)
    cluster.as_postgres(
        "pg_restore", "-h", str(cluster.socket_dir), "--dbname", "spse_restored", "--no-owner", stdin=plain.stdout
    )
    q = "SELECT count(*), sum(nilai), md5(string_agg(penyedia, ',' ORDER BY id)) FROM penawaran"
    assert cluster.sql("spse_restored", q) == cluster.sql("spse", q)


def test_a_failed_dump_leaves_no_file_and_keeps_the_last_good_one(
    cluster: Cluster, tmp_path: Path, age_key: tuple[Path, str]
) -> None:
    _, recipient = age_key
    out = tmp_path / "dumps"
    out.mkdir()
    good = dump_database("spse", out, [recipient], pg_dump=cluster.pg_dump())
    before = good.path.read_bytes()
    with pytest.raises(BackupError, match="pg_dump of no_such_db failed"):
        dump_database("no_such_db", out, [recipient], pg_dump=cluster.pg_dump())
    # A dump that dies half-way after writing data: nothing that looks like a dump is left.
    dying = ("sh", "-c", "head -c 200000 /dev/urandom; exit 3", "pg_dump")
    with pytest.raises(BackupError, match="exit 3"):
        dump_database("spse", out, [recipient], pg_dump=dying)
    assert sorted(p.name for p in out.iterdir()) == [good.path.name]
    assert good.path.read_bytes() == before


def test_no_recipient_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="no age recipients"):
        dump_database("spse", tmp_path, [])
