"""pgBackRest on a real PostgreSQL 15 cluster: WAL archived to the locked off-room bucket (radosgw
over HTTPS) and to a local repository; full and incremental backups; point-in-time restore into a
throwaway cluster that loses at most the seconds after the chosen time."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

import pytest
from lpse_backup.database import PgBackRest
from lpse_backup.errors import BackupError
from lpse_backup.media import MediaError, check_drive
from lpse_backup.offroom import Offroom, client
from lpse_backup.portable import COPIES, LATEST, backup_labels, copies, copy_repository

from tests.backup.conftest import ROTA, Cluster, make_drive, new_cluster, plug, remove_cluster, unplug

NOW = dt.datetime(2026, 12, 1, 1, 30, tzinfo=dt.UTC)


def test_point_in_time_restore_from_either_repository(archived: tuple[Cluster, PgBackRest, Offroom]) -> None:
    pg, br, o = archived
    full = {repo: br.backup(repo, "full", NOW) for repo in (1, 2)}
    assert all(b.type == "full" for b in full.values())
    pg.sql("postgres", "INSERT INTO penawaran (nilai) SELECT g FROM generate_series(1, 1000) g")
    incr = br.backup(1, "incr", NOW)
    assert incr.type == "incr" and incr.repo_bytes < full[1].repo_bytes

    pg.sql("postgres", "INSERT INTO penawaran (nilai) SELECT g FROM generate_series(1001, 1500) g")
    time.sleep(1.5)
    target = pg.sql("postgres", "SELECT to_char(now(), 'YYYY-MM-DD HH24:MI:SS.USOF')")
    committed_before = int(pg.sql("postgres", "SELECT count(*) FROM penawaran"))
    time.sleep(1.5)
    pg.sql("postgres", "INSERT INTO penawaran (nilai) SELECT g FROM generate_series(1501, 1600) g")
    pg.sql("postgres", "SELECT pg_switch_wal()")
    deadline = time.monotonic() + 60  # async archiving: wait until the segment is in the archive
    while (
        pg.sql("postgres", "SELECT last_failed_wal IS NULL AND last_archived_wal IS NOT NULL FROM pg_stat_archiver")
        != "t"
    ):
        assert time.monotonic() < deadline
        time.sleep(1)
    time.sleep(6)  # archive_timeout 5 s: the segment holding `target` is pushed

    for repo in (1, 2):
        restored = new_cluster(initdb=False)
        try:
            br.restore(repo, restored.data, target_time=target)
            with (restored.data / "postgresql.auto.conf").open("a") as f:
                f.write(f"unix_socket_directories = '{restored.socket_dir}'\n")
            restored.start()
            deadline = time.monotonic() + 60
            while restored.sql("postgres", "SELECT pg_is_in_recovery()") != "f":
                assert time.monotonic() < deadline, "the restored cluster did not finish recovery"
                time.sleep(0.5)
            got = int(restored.sql("postgres", "SELECT count(*) FROM penawaran"))
            assert got == committed_before, f"repo{repo}: {got} rows at the target time, expected {committed_before}"
        finally:
            remove_cluster(restored)

    # Everything pgBackRest put in the bucket is encrypted: no backup.info in clear text.
    s3 = client(o)
    info = s3.get_object(Bucket=o.bucket, Key="pgbackrest/backup/spse/backup.info")["Body"].read()
    assert b"backup-current" not in info


def test_a_wrong_cipher_pass_fails_clearly(archived: tuple[Cluster, PgBackRest, Offroom]) -> None:
    pg, br, _ = archived
    bad = pg.base / "bad.conf"  # readable by postgres, unlike pytest's tmp_path
    text = br.config.read_text()
    bad.write_text(
        "\n".join(
            ln if not ln.startswith("repo2-cipher-pass") else "repo2-cipher-pass=wrong" for ln in text.splitlines()
        )
    )
    shutil.chown(bad, "postgres", "postgres")
    with pytest.raises(BackupError, match="cannot read repo2 of stanza spse"):
        PgBackRest(bad).backups(2)


def archiver(pg: Cluster) -> tuple[int, int]:
    """(archived_count, failed_count) of the cluster's WAL archiver."""
    a, f = pg.sql("postgres", "SELECT archived_count, failed_count FROM pg_stat_archiver").split("|")
    return int(a), int(f)


def test_the_drive_copy_restores_and_an_unplugged_drive_never_stalls_archiving(
    archived: tuple[Cluster, PgBackRest, Offroom], tmp_path: Path
) -> None:
    pg, br, _ = archived
    mountpoint = pg.base / "media"  # pgBackRest (user postgres) must reach the drive
    mountpoint.mkdir()
    repo2 = Path(next(ln.split("=", 1)[1] for ln in br.config.read_text().splitlines() if ln.startswith("repo2-path")))
    br.backup(2, "full", NOW)
    pg.sql("postgres", "INSERT INTO penawaran (nilai) VALUES (424242)")
    br.backup(2, "incr", NOW)  # the copy must hold WAL up to here

    plug(make_drive(tmp_path, "LPSE-BACKUP-A", size_mb=256), mountpoint)
    try:
        drive_copy_restores(pg, br, repo2, mountpoint)
    finally:
        unplug(mountpoint)

    # Unplugged: archiving goes on (WAL never goes to the drive) and the copy is refused.
    before = archiver(pg)
    for _ in range(3):
        pg.sql("postgres", "INSERT INTO penawaran (nilai) VALUES (1); SELECT pg_switch_wal()")
    deadline = time.monotonic() + 60
    while archiver(pg)[0] < before[0] + 3:
        assert time.monotonic() < deadline, f"archiving stalled with the drive unplugged: {archiver(pg)}"
        time.sleep(1)
    assert archiver(pg)[1] == before[1], "archive-push failed while the drive was away"
    with pytest.raises(MediaError, match="no drive at"):
        check_drive(mountpoint, ROTA)
    assert not (mountpoint / "pgbackrest").exists()


def drive_copy_restores(pg: Cluster, br: PgBackRest, repo2: Path, mountpoint: Path) -> None:
    drive = check_drive(mountpoint, ROTA)
    first = copy_repository(repo2, drive, "spse", "20261201T013000Z", 2, lambda p: br.verify(2, p))
    assert first.files_copied > 0 and first.bytes_copied > 0 and first.files_linked == 0
    again = copy_repository(repo2, drive, "spse", "20261202T013000Z", 2, lambda p: br.verify(2, p))
    assert again.files_linked > 0 and again.bytes_copied < first.bytes_copied  # only the info files again
    assert (mountpoint / LATEST).resolve() == again.copy
    assert b"backup-current" not in (mountpoint / "pgbackrest/backup/spse/backup.info").read_bytes()

    # Restore from the drive alone: the config's repo2 pointed at the drive copy.
    assert restore_from(pg, br, repo2, mountpoint / LATEST, "SELECT count(*) FROM penawaran WHERE nilai = 424242") == 1


def restore_from(
    pg: Cluster, br: PgBackRest, repo2: Path, repo_path: Path, count: str = "SELECT count(*) FROM penawaran"
) -> int:
    """`count` in a cluster restored from the repository copy at `repo_path`."""
    conf = pg.base / "from-copy.conf"
    conf.write_text(br.config.read_text().replace(f"repo2-path={repo2}", f"repo2-path={repo_path}"))
    shutil.chown(conf, "postgres", "postgres")
    restored = new_cluster(initdb=False)
    try:
        PgBackRest(conf).restore(2, restored.data)
        with (restored.data / "postgresql.auto.conf").open("a") as f:
            f.write(f"unix_socket_directories = '{restored.socket_dir}'\n")
        restored.start()
        deadline = time.monotonic() + 60
        while restored.sql("postgres", "SELECT pg_is_in_recovery()") != "f":
            assert time.monotonic() < deadline
            time.sleep(0.5)
        return int(restored.sql("postgres", count))
    finally:
        remove_cluster(restored)


def test_the_drive_keeps_its_history_whatever_happens_to_the_local_repository(
    archived: tuple[Cluster, PgBackRest, Offroom], tmp_path: Path
) -> None:
    pg, br, _ = archived
    mountpoint = pg.base / "media-history"
    mountpoint.mkdir()
    repo2 = Path(next(ln.split("=", 1)[1] for ln in br.config.read_text().splitlines() if ln.startswith("repo2-path")))
    plug(make_drive(tmp_path, "LPSE-BACKUP-B", size_mb=256), mountpoint)
    try:
        drive = check_drive(mountpoint, ROTA)
        br.backup(2, "full", NOW)
        pg.sql("postgres", "INSERT INTO penawaran (nilai) VALUES (777001)")
        br.backup(2, "incr", NOW)
        good = copy_repository(repo2, drive, "spse", "20261203T013000Z", 2, lambda p: br.verify(2, p))
        rows = int(pg.sql("postgres", "SELECT count(*) FROM penawaran"))

        # A damaged file in the local repository: the new copy fails its verify and is dropped;
        # the drive's newest copy is still the good one.
        pg.sql("postgres", "INSERT INTO penawaran (nilai) VALUES (777002)")
        incr = br.backup(2, "incr", NOW)
        victim = max(
            (p for p in (repo2 / "backup/spse" / incr.label / "pg_data").rglob("*") if p.is_file()),
            key=lambda p: p.stat().st_size,
        )
        original = victim.read_bytes()
        data = bytearray(original)
        data[len(data) // 2] ^= 0xFF
        victim.write_bytes(bytes(data))
        try:
            with pytest.raises(BackupError, match="pgbackrest verify found damage"):
                copy_repository(repo2, drive, "spse", "20261204T013000Z", 2, lambda p: br.verify(2, p))
        finally:
            victim.write_bytes(original)
        assert (mountpoint / LATEST).resolve() == good.copy
        assert [c.name for c in copies(mountpoint)] == [good.copy.name]
        assert not list((mountpoint / COPIES).glob("*partial*"))

        # The local repository emptied (moved aside by mistake): nothing is copied, nothing removed.
        aside = repo2.with_name(repo2.name + ".aside")
        repo2.rename(aside)
        repo2.mkdir()
        shutil.chown(repo2, "postgres", "postgres")
        try:
            with pytest.raises(BackupError, match="holds no backup"):
                copy_repository(repo2, drive, "spse", "20261205T013000Z", 2, lambda p: br.verify(2, p))
        finally:
            shutil.rmtree(repo2)
            aside.rename(repo2)
        assert [c.name for c in copies(mountpoint)] == [good.copy.name]
        assert backup_labels(mountpoint / LATEST, "spse")
        assert restore_from(pg, br, repo2, mountpoint / LATEST) == rows  # its newest backup, whole
    finally:
        unplug(mountpoint)
