"""The off-room bucket (S3-compatible, boto3): created and checked so that recent backups survive
a mistake or ransomware on the SPSE host.

Versioning plus object lock in COMPLIANCE mode with a default retention: every version written
stays undeletable for `lock_days`, whoever asks, root of the bucket included. The backup tools
may still "delete" old backups (that writes a delete marker); the locked versions stay
restorable until the lock runs out, and a lifecycle rule then removes noncurrent versions so
the bucket does not grow for ever.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from boto3.exceptions import S3UploadFailedError
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from lpse_backup.errors import OffroomError


@dataclass(frozen=True)
class Offroom:
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    region: str = "default"
    ca_file: str | None = None  # the S3 server's CA, if not a public one


def client(o: Offroom, attempts: int = 4, timeout_s: float = 10.0) -> Any:
    """A boto3 S3 client with path-style addressing (radosgw, MinIO) and bounded retries."""
    cfg = Config(
        s3={"addressing_style": "path"},
        retries={"mode": "standard", "max_attempts": attempts},
        connect_timeout=timeout_s,
        read_timeout=timeout_s * 3,
        # botocore 1.36+ streams uploads over HTTPS as aws-chunked with a trailing CRC, which
        # radosgw (Ceph 16) and older MinIO reject (MissingContentLength): checksums only where
        # S3 requires them (object lock PUTs get Content-MD5).
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.client(
        "s3",
        endpoint_url=o.endpoint,
        aws_access_key_id=o.access_key,
        aws_secret_access_key=o.secret_key,
        region_name=o.region,
        verify=o.ca_file if o.ca_file else True,
        config=cfg,
    )


def explain(o: Offroom, e: Exception) -> OffroomError:
    """Turn a boto3 failure into what the operator should check."""
    if isinstance(e, EndpointConnectionError):
        return OffroomError(
            f"the off-room S3 endpoint {o.endpoint} does not answer ({e}): check the link to the off-room "
            f"site and that its S3 service runs. The portable-media copy does not depend on it."
        )
    if isinstance(e, ClientError):
        code = e.response.get("Error", {}).get("Code", "")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "Forbidden"):
            # HEAD requests carry no error body: a wrong key shows only as 403.
            return OffroomError(
                f"the off-room S3 at {o.endpoint} refused the backup key for bucket {o.bucket} ({code}): check "
                f"the access and secret key in the vault (backup_s3_access_key, backup_s3_secret_key) and that "
                f"the bucket belongs to that key."
            )
        return OffroomError(f"off-room S3 {o.endpoint}, bucket {o.bucket}: {code}: {e}")
    return OffroomError(f"off-room S3 {o.endpoint}: {e}")


@dataclass(frozen=True)
class BucketState:
    versioning: str
    lock_enabled: bool
    lock_mode: str
    lock_days: int
    noncurrent_expiry_days: int | None


def read_state(s3: Any, bucket: str) -> BucketState:
    versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status", "Disabled")
    try:
        lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    except ClientError as e:
        if e.response["Error"]["Code"] != "ObjectLockConfigurationNotFoundError":
            raise
        lock = {}
    retention = lock.get("Rule", {}).get("DefaultRetention", {})
    days = int(retention.get("Days", 0)) + 365 * int(retention.get("Years", 0))
    expiry = None
    try:
        for rule in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]:
            if rule.get("Status") == "Enabled" and "NoncurrentVersionExpiration" in rule:
                expiry = int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
    except ClientError as e:
        if e.response["Error"]["Code"] != "NoSuchLifecycleConfiguration":
            raise
    return BucketState(versioning, lock.get("ObjectLockEnabled") == "Enabled", retention.get("Mode", ""), days, expiry)


def ensure_bucket(o: Offroom, lock_days: int) -> tuple[BucketState, bool]:
    """Create the bucket locked, or bring an existing one to the wanted lock; (state, changed).

    A bucket made without object lock cannot be given one afterwards (S3's rule): that is an
    error that names a new bucket as the way out, never a silent downgrade."""
    if lock_days < 1:
        raise OffroomError("backup_s3_lock_days must be at least 1")
    s3 = client(o)
    changed = False
    try:
        try:
            s3.head_bucket(Bucket=o.bucket)
        except ClientError as e:
            if e.response["Error"]["Code"] not in ("404", "NoSuchBucket", "NotFound"):
                raise
            s3.create_bucket(Bucket=o.bucket, ObjectLockEnabledForBucket=True)
            changed = True
        state = read_state(s3, o.bucket)
        if not state.lock_enabled:
            raise OffroomError(
                f"bucket {o.bucket} at {o.endpoint} exists without object lock, which S3 cannot add later: "
                f"create a new bucket (set backup_s3_bucket to a new name) and let the backup role make it."
            )
        if state.versioning != "Enabled":
            s3.put_bucket_versioning(Bucket=o.bucket, VersioningConfiguration={"Status": "Enabled"})
            changed = True
        if (state.lock_mode, state.lock_days) != ("COMPLIANCE", lock_days):
            if state.lock_mode == "COMPLIANCE" and state.lock_days > lock_days:
                raise OffroomError(
                    f"bucket {o.bucket} already locks new versions for {state.lock_days} days; shortening "
                    f"the lock to {lock_days} would weaken the off-room copy. Raise backup_s3_lock_days back."
                )
            s3.put_object_lock_configuration(
                Bucket=o.bucket,
                ObjectLockConfiguration={
                    "ObjectLockEnabled": "Enabled",
                    "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": lock_days}},
                },
            )
            changed = True
        if state.noncurrent_expiry_days != lock_days + 1:
            s3.put_bucket_lifecycle_configuration(
                Bucket=o.bucket,
                LifecycleConfiguration={
                    "Rules": [
                        {
                            "ID": "lpse-expire-old-versions",
                            "Status": "Enabled",
                            "Filter": {"Prefix": ""},
                            "NoncurrentVersionExpiration": {"NoncurrentDays": lock_days + 1},
                        }
                    ]
                },
            )
            changed = True
        return read_state(s3, o.bucket), changed
    except (ClientError, BotoCoreError) as e:
        raise explain(o, e) from e


def check_bucket(o: Offroom, min_lock_days: int) -> BucketState:
    """Fail unless the bucket is versioned and locks new versions in COMPLIANCE mode long enough."""
    try:
        state = read_state(client(o), o.bucket)
    except (ClientError, BotoCoreError) as e:
        raise explain(o, e) from e
    problems = []
    if state.versioning != "Enabled":
        problems.append(f"versioning is {state.versioning}")
    if not state.lock_enabled or state.lock_mode != "COMPLIANCE":
        problems.append(f"object lock is {state.lock_mode or 'off'}, not COMPLIANCE")
    elif state.lock_days < min_lock_days:
        problems.append(f"new versions are locked {state.lock_days} days, fewer than {min_lock_days}")
    if problems:
        raise OffroomError(f"bucket {o.bucket} at {o.endpoint} does not protect backups: " + "; ".join(problems))
    return state


def upload(o: Offroom, path: Path, key: str) -> None:
    """Put one file into the bucket (multipart when large), with the bucket's default lock."""
    try:
        client(o).upload_file(str(path), o.bucket, key)
    except (ClientError, BotoCoreError, S3UploadFailedError) as e:
        cause = e.__cause__ if isinstance(e, S3UploadFailedError) and isinstance(e.__cause__, Exception) else e
        raise explain(o, cause) from e


def sha256_of(o: Offroom, key: str) -> str:
    """Read an object back whole from the bucket and return its SHA-256."""
    h = hashlib.sha256()
    try:
        body = client(o).get_object(Bucket=o.bucket, Key=key)["Body"]
        for chunk in iter(lambda: body.read(1 << 20), b""):
            h.update(chunk)
    except (ClientError, BotoCoreError) as e:
        raise explain(o, e) from e
    return h.hexdigest()


def keep_newest(o: Offroom, prefix: str, keep: int) -> int:
    """Delete (a delete marker: the locked versions stay until their lock ends, then the
    lifecycle rule removes them) all but the newest `keep` objects under `prefix`, by key order."""
    try:
        s3 = client(o)
        keys = sorted(
            obj["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=o.bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
        )
        old = keys[: -max(1, keep)]
        for key in old:
            s3.delete_object(Bucket=o.bucket, Key=key)
        return len(old)
    except (ClientError, BotoCoreError) as e:
        raise explain(o, e) from e
