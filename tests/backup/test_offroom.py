"""The off-room bucket on a real S3 server (Ceph radosgw on loopback, started here): created
locked, checked, and it refuses deletion."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from lpse_backup.documents import Restic
from lpse_backup.errors import BackupError
from lpse_backup.offroom import Offroom, OffroomError, check_bucket, client, ensure_bucket
from lpse_lab.radosgw import S3Server


def offroom(server: S3Server, bucket: str | None = None, **over: str) -> Offroom:
    base = {
        "endpoint": server.endpoint,
        "bucket": bucket or f"lpse-{uuid.uuid4().hex[:10]}",
        "access_key": server.access_key,
        "secret_key": server.secret_key,
        "region": server.region,
    }
    return Offroom(**(base | over))


def test_a_new_bucket_is_versioned_locked_and_cleans_old_versions(s3_server: S3Server) -> None:
    o = offroom(s3_server)
    state, changed = ensure_bucket(o, lock_days=30)
    assert changed
    got = (state.versioning, state.lock_enabled, state.lock_mode, state.lock_days)
    assert got == ("Enabled", True, "COMPLIANCE", 30)
    assert state.noncurrent_expiry_days == 31
    assert check_bucket(o, min_lock_days=30) == state
    again, changed = ensure_bucket(o, lock_days=30)
    assert not changed and again == state


def test_a_locked_version_cannot_be_deleted(s3_server: S3Server) -> None:
    o = offroom(s3_server)
    ensure_bucket(o, lock_days=2)
    s3 = client(o)
    version = s3.put_object(Bucket=o.bucket, Key="pgbackrest/backup.info", Body=b"backup")["VersionId"]
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.delete_object(Bucket=o.bucket, Key="pgbackrest/backup.info", VersionId=version)
    # A plain delete only hides it behind a delete marker: the version is still there to restore.
    s3.delete_object(Bucket=o.bucket, Key="pgbackrest/backup.info")
    body = s3.get_object(Bucket=o.bucket, Key="pgbackrest/backup.info", VersionId=version)["Body"].read()
    assert body == b"backup"


def test_the_lock_is_never_shortened(s3_server: S3Server) -> None:
    o = offroom(s3_server)
    ensure_bucket(o, lock_days=30)
    with pytest.raises(OffroomError, match="would weaken the off-room copy"):
        ensure_bucket(o, lock_days=7)
    assert check_bucket(o, min_lock_days=30).lock_days == 30


def test_a_bucket_without_lock_is_refused(s3_server: S3Server) -> None:
    o = offroom(s3_server)
    client(o).create_bucket(Bucket=o.bucket)
    with pytest.raises(OffroomError, match="without object lock, which S3 cannot add later"):
        ensure_bucket(o, lock_days=30)
    with pytest.raises(OffroomError, match="does not protect backups: versioning is Disabled"):
        check_bucket(o, min_lock_days=30)


def test_a_wrong_key_and_a_dead_endpoint_say_what_to_check(s3_server: S3Server) -> None:
    with pytest.raises(OffroomError, match="refused the backup key"):
        ensure_bucket(offroom(s3_server, secret_key="not-the-secret"), lock_days=30)
    dead = offroom(s3_server, endpoint="http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(OffroomError, match=r"does not answer.*portable-media copy does not depend on it"):
        check_bucket(dead, min_lock_days=30)


# --- the document store with restic, to the bucket and to a drive ------------------------------


def make_documents(root: Path, n: int = 12) -> dict[str, bytes]:
    """Bid files with a readable marker inside (to prove the stored copies do not show it)."""
    files = {}
    for i in range(n):
        data = f"PENAWARAN-RAHASIA-{i} ".encode() * 50 + os.urandom(64 * 1024)
        rel = f"lelang-{i % 3}/penawaran-{i}.pdf"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        files[rel] = data
    return files


def restic_for(server: S3Server, o: Offroom, key: Path) -> Restic:
    env = {"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key}
    return Restic(f"s3:{server.endpoint}/{o.bucket}/documents", key, env)


@pytest.fixture()
def restic_key(tmp_path: Path) -> Path:
    key = tmp_path / "restic.key"
    key.write_text(uuid.uuid4().hex)
    key.chmod(0o600)
    return key


def test_documents_go_to_the_locked_bucket_encrypted_and_come_back(
    s3_server: S3Server, tmp_path: Path, restic_key: Path
) -> None:
    o = offroom(s3_server)
    ensure_bucket(o, lock_days=2)
    docs = tmp_path / "documents"
    files = make_documents(docs)
    repo = restic_for(s3_server, o, restic_key)
    assert repo.init() and not repo.init()
    snap = repo.backup([docs], tags=["documents"])
    assert snap.files_new == len(files) and snap.bytes_added > 0
    repo.check("100%")

    s3 = client(o)
    keys = [obj["Key"] for obj in s3.list_objects_v2(Bucket=o.bucket)["Contents"]]
    assert any(k.startswith("documents/data/") for k in keys)
    for k in keys:
        assert b"PENAWARAN-RAHASIA" not in s3.get_object(Bucket=o.bucket, Key=k)["Body"].read(), k

    # Unchanged store: the next snapshot adds (almost) nothing.
    assert repo.backup([docs]).files_new == 0
    out = tmp_path / "restored"
    repo.restore(snap.id, out)
    for rel, data in files.items():
        assert (out / docs.relative_to("/") / rel).read_bytes() == data


def test_a_wrong_key_is_refused_and_writes_nothing(s3_server: S3Server, tmp_path: Path, restic_key: Path) -> None:
    o = offroom(s3_server)
    ensure_bucket(o, lock_days=2)
    repo = restic_for(s3_server, o, restic_key)
    repo.init()
    before = {obj["Key"] for obj in client(o).list_objects_v2(Bucket=o.bucket)["Contents"]}
    wrong = tmp_path / "wrong.key"
    wrong.write_text("not the key")
    docs = tmp_path / "documents"
    make_documents(docs, 2)
    with pytest.raises(BackupError, match="the restic key does not open"):
        restic_for(s3_server, o, wrong).backup([docs])
    after = {obj["Key"] for obj in client(o).list_objects_v2(Bucket=o.bucket)["Contents"]}
    assert after == before


def test_a_tampered_pack_on_the_drive_is_found_by_check(tmp_path: Path, restic_key: Path) -> None:
    docs = tmp_path / "documents"
    make_documents(docs, 4)
    repo = Restic(str(tmp_path / "drive" / "documents"), restic_key)
    repo.init()
    repo.backup([docs])
    repo.check("100%")
    pack = next(p for p in (tmp_path / "drive" / "documents" / "data").rglob("*") if p.is_file())
    raw = bytearray(pack.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    pack.write_bytes(bytes(raw))
    with pytest.raises(BackupError, match="restic check"):
        repo.check("100%")
