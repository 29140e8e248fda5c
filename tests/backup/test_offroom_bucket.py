"""The off-room bucket on a real S3 server (Ceph radosgw on loopback, started here): created
locked, checked, and it refuses deletion."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from lpse_backup.offroom import Offroom, OffroomError, check_bucket, client, ensure_bucket
from lpse_lab import radosgw
from lpse_lab.radosgw import S3Server

STATE = Path(os.environ.get("LPSE_RADOSGW_DIR", "/var/tmp/lpse-radosgw"))


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    try:
        server = radosgw.start(STATE, "127.0.0.1", 7480)
    except radosgw.RadosgwError as e:
        pytest.fail(f"could not start the radosgw test server: {e}")
    yield server
    radosgw.stop(STATE)


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
