"""The places backups go, as the commands reach them: the portable drive (checked before every
write: a drive can be pulled out in the middle of a run), the off-room bucket (checked before
every write: never write where the lock would not protect the copy), the restic repositories
on both, and pgBackRest's repositories (the bucket, repo1, and the local one, repo2)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from lpse_backup.database import PgBackRest
from lpse_backup.documents import Restic
from lpse_backup.media import Drive, check_drive
from lpse_backup.offroom import check_bucket
from lpse_backup.settings import Settings


class Targets:
    def __init__(self, s: Settings) -> None:
        self.s = s
        self.br = PgBackRest(s.pgbackrest_config, s.stanza)

    def drive(self, need_bytes: int = 0) -> Drive:
        return check_drive(self.s.drive_mountpoint, self.s.rota, need_bytes=need_bytes)

    def bucket(self) -> None:
        check_bucket(self.s.offroom, self.s.lock_days)

    @contextlib.contextmanager
    def documents(self, target: str) -> Iterator[Restic]:
        """The documents' restic repository on `target`. On the drive it is reached through the
        drive held open for as long as it is used: restic writes there even to read (its lock),
        and a drive pulled out meanwhile must not have that land on the server's own disk."""
        if target == "s3":
            o = self.s.offroom
            env = {"AWS_ACCESS_KEY_ID": o.access_key, "AWS_SECRET_ACCESS_KEY": o.secret_key}
            if o.ca_file:
                env["RESTIC_CACERT"] = o.ca_file
            yield Restic(f"s3:{o.endpoint}/{o.bucket}/documents", self.s.restic_password_file, env)
            return
        with self.drive().opened() as d:
            yield Restic(str(d.root / "documents"), self.s.restic_password_file, drive=d)

    def repo(self, target: str) -> int:
        """The pgBackRest repository a target's database copy is read through (the drive holds
        copies of the local repository)."""
        return self.s.offroom_repo if target == "s3" else self.s.local_repo
