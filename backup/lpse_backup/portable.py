"""Copy a backup repository (pgBackRest's local repository, already encrypted) to the portable
drive so that the drive alone can restore.

pgBackRest never rewrites a backup or WAL file once written; only its `*.info` files change.
So the copy adds new files first, each written under a temporary name and renamed when
complete, then the info files (which name the backups), and only then removes what the source
no longer has (expired backups). A copy killed at any point leaves the drive's repository
describing only backups whose files are all there.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from lpse_backup.media import Drive, MediaError

PARTIAL = ".lpse-partial"


@dataclass(frozen=True)
class SyncResult:
    files_copied: int
    bytes_copied: int
    files_removed: int


def _is_info(rel: Path) -> bool:
    return rel.name.endswith((".info", ".info.copy"))


def _files(root: Path) -> dict[Path, int]:
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            p = Path(dirpath) / name
            if not name.endswith(PARTIAL):
                out[p.relative_to(root)] = p.stat().st_size
    return out


def _copy_atomic(src: Path, dst: Path) -> int:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + PARTIAL)
    with src.open("rb") as fin, tmp.open("wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())
    tmp.replace(dst)
    return dst.stat().st_size


def plan(src: Path, dst: Path) -> tuple[list[Path], int]:
    """Files to copy (data first, info files last) and their total size."""
    have = _files(dst) if dst.exists() else {}
    want = _files(src)
    todo = [rel for rel, size in want.items() if have.get(rel) != size or _is_info(rel)]
    todo.sort(key=lambda rel: (_is_info(rel), rel.name.endswith(".info"), str(rel)))
    return todo, sum(want[rel] for rel in todo)


def sync_repository(src: Path, drive: Drive, name: str) -> SyncResult:
    """Bring <drive>/<name> up to date with `src`; refuses if the drive lacks the room."""
    dst = drive.mountpoint / name
    todo, need = plan(src, dst)
    free = shutil.disk_usage(drive.mountpoint).free
    if need > free:
        raise MediaError(
            f"drive {drive.label} has {free / 2**30:.2f} GiB free, copying {name} needs {need / 2**30:.2f} GiB: "
            f"swap in the next drive of the rota. The drive's earlier copy is untouched."
        )
    copied = 0
    for rel in todo:
        copied += _copy_atomic(src / rel, dst / rel)
    for leftover in dst.rglob("*" + PARTIAL):  # from a copy that was killed
        leftover.unlink()
    removed = 0
    want = _files(src)
    for rel in list(_files(dst)):
        if rel not in want:
            (dst / rel).unlink()
            removed += 1
    for dirpath, _, _ in os.walk(dst):
        fd = os.open(dirpath, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return SyncResult(len(todo), copied, removed)
