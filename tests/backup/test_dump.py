"""The age-encrypted logical dump against a real PostgreSQL 15 cluster started by the test,
restored with stock tools only (age, pg_restore)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from lpse_backup.drill import Drill
from lpse_backup.dump import Dump, dump_database
from lpse_backup.errors import BackupError

from tests.backup.conftest import Cluster, new_cluster, remove_cluster

MARKER = "PENAWARAN-RAHASIA-PT-MAJU-JAYA"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = new_cluster()
    c.start()
    try:
        c.as_postgres("createdb", "-h", str(c.socket_dir), "spse")
        c.sql(
            "spse",
            "CREATE TABLE penawaran (id serial primary key, lelang int, penyedia text, nilai numeric);"
            f"INSERT INTO penawaran (lelang, penyedia, nilai) SELECT g % 50, '{MARKER}-' || g, g * 1000.5 "
            "FROM generate_series(1, 20000) g;"
            # Bid files kept in the database: incompressible, so the dump is far larger than a pipe's
            # buffer (a drill that read only the archive's head once passed small dumps alone).
            "CREATE TABLE lampiran (id serial primary key, isi text);"
            "INSERT INTO lampiran (isi) SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 40000) g "
            "GROUP BY g % 100;",
        )
        yield c
    finally:
        remove_cluster(c)


@pytest.fixture()
def age_key(tmp_path: Path) -> tuple[Path, str]:
    key = tmp_path / "age.key"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True).stdout
    return key, recipient.strip()


@pytest.fixture()
def dump(cluster: Cluster, tmp_path: Path, age_key: tuple[Path, str]) -> Dump:
    """A good dump of the test database, alone in its directory."""
    out = tmp_path / "dumps"
    out.mkdir()
    return dump_database("spse", out, [age_key[1]], pg_dump=cluster.pg_dump())


def test_the_dump_is_ciphertext_and_restores_with_stock_tools(
    cluster: Cluster, dump: Dump, age_key: tuple[Path, str]
) -> None:
    key, _ = age_key
    out = dump.path.parent
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
    cluster: Cluster, dump: Dump, age_key: tuple[Path, str]
) -> None:
    _, recipient = age_key
    good, out = dump, dump.path.parent
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


def test_the_drill_reads_the_whole_dump_back_and_fails_on_damage_anywhere(
    dump: Dump, tmp_path: Path, age_key: tuple[Path, str]
) -> None:
    key, _ = age_key
    assert dump.bytes > 4 * 65536
    assert Drill.dump(dump.path, key).startswith(f"{dump.path.name}: 2 tables, all ")

    # One byte changed near the end: the head of the archive still decrypts.
    raw = bytearray(dump.path.read_bytes())
    raw[-1000] ^= 0x01
    damaged = dump.path.parent / "spse-damaged.dump.age"
    damaged.write_bytes(bytes(raw))
    with pytest.raises(BackupError, match=r"age could not decrypt spse-damaged\.dump\.age"):
        Drill.dump(damaged, key)

    other = tmp_path / "other.key"
    subprocess.run(["age-keygen", "-o", str(other)], check=True, capture_output=True)
    with pytest.raises(BackupError, match=r"age could not decrypt .*no identity matched"):
        Drill.dump(dump.path, other)
