"""The database's copies on the portable drive: a history that belongs to the drive.

Each copy is a complete pgBackRest repository, the local repository (already encrypted) as it
was that night, in `<drive>/pgbackrest-generations/<stamp>/`; `<drive>/pgbackrest` is a symlink
to the newest copy that passed `pgbackrest verify`, so the key sheet's recipe (repo path
`<drive>/pgbackrest`) restores the newest copy. pgBackRest never rewrites a backup or WAL file
once written, so a file already on the drive with the same size and time is hard-linked, not
copied again: a night costs the drive only what is new.

The drive keeps its own retention: the copies of its newest `generations` full backups (for each
full backup, the last copy taken while it was the newest). It never removes a copy because the
server no longer has it: an emptied, replaced or damaged local repository, or a restore from
this drive, cannot erase the drive's history. A new copy is built under a temporary name,
verified, and only then becomes the newest; a copy killed or pulled out at any point leaves the
earlier copies as they were.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lpse_backup.clock import stamp
from lpse_backup.dump import fsync_path
from lpse_backup.errors import BackupError, MediaError
from lpse_backup.media import Drive, OpenDrive

COPIES = "pgbackrest-generations"
LATEST = "pgbackrest"
PARTIAL = ".lpse-partial"
LABEL = re.compile(r"^\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?$")


@dataclass(frozen=True)
class CopyResult:
    copy: Path  # the new newest copy on the drive
    newest_backup: str  # label of the newest backup it holds
    files_copied: int
    bytes_copied: int
    files_linked: int
    copies_removed: int


def _files(root: Path) -> dict[Path, os.stat_result]:
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            if not name.endswith(PARTIAL):
                p = Path(dirpath) / name
                out[p.relative_to(root)] = p.lstat()
    return out


def _is_info(rel: Path) -> bool:
    return rel.name.endswith((".info", ".info.copy"))


def backup_labels(repo: Path, stanza: str) -> list[str]:
    """Backups in a repository, oldest first, from its directory names (plain text even when the
    repository is encrypted)."""
    d = repo / "backup" / stanza
    return sorted(p.name for p in d.iterdir() if LABEL.match(p.name)) if d.is_dir() else []


def full_of(label: str) -> str:
    return label.split("_", 1)[0]


def copies(drive: Path) -> list[Path]:
    """The drive's copies, oldest first (the layout before copies had generations is moved in)."""
    root = drive / COPIES
    latest = drive / LATEST
    if latest.is_dir() and not latest.is_symlink():  # a drive written by lpse-backup before generations
        info = latest / "backup" / "backup.info"
        when = info.stat().st_mtime if info.exists() else latest.stat().st_mtime
        root.mkdir(exist_ok=True)
        latest.rename(root / _stamp_of(when))
        _point_latest(drive, root / _stamp_of(when))
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.endswith(PARTIAL))


def _stamp_of(epoch: float) -> str:
    return stamp(dt.datetime.fromtimestamp(epoch, dt.UTC))


def newest(drive: Path) -> Path | None:
    found = copies(drive)
    return found[-1] if found else None


def _point_latest(drive: Path, target: Path) -> None:
    tmp = drive / (LATEST + PARTIAL)
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target.relative_to(drive))
    tmp.replace(drive / LATEST)


def _sync_tree(root: Path) -> None:
    for dirpath, _, names in os.walk(root):
        for name in names:
            fsync_path(os.path.join(dirpath, name))
        fsync_path(dirpath)


def _copy(src: Path, dst: Path, st: os.stat_result) -> int:
    with src.open("rb") as fin, dst.open("wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))  # so that tomorrow's copy can link it
    return st.st_size


def keep(found: list[Path], stanza: str, generations: int) -> list[Path]:
    """The copies retention keeps: the newest, and for each of the newest `generations` full
    backups the last copy taken while it was the newest full."""
    by_full: dict[str, Path] = {}
    for c in found:  # oldest first: a later copy with the same newest full replaces an earlier one
        labels = backup_labels(c, stanza)
        by_full[full_of(labels[-1]) if labels else ""] = c
    kept = [by_full[f] for f in sorted(by_full)[-max(1, generations) :]]
    if found and found[-1] not in kept:
        kept.append(found[-1])
    return kept


def copy_repository(
    src: Path,
    drive: Drive,
    stanza: str,
    night: str,
    generations: int,
    verify: Callable[[Path], None],
) -> CopyResult:
    """Add a copy of the local repository `src` to the drive as of `night` (a stamp), verify it, make it
    the newest, then apply the drive's retention. Refuses, leaving the drive as it was, when `src`
    holds no backup or is older than the drive's newest copy, or when the drive lacks the room."""
    with drive.opened() as d:
        return _add_copy(src, d, stanza, night, generations, verify)


def _add_copy(
    src: Path, d: OpenDrive, stanza: str, night: str, generations: int, verify: Callable[[Path], None]
) -> CopyResult:
    drive = d.drive
    labels = backup_labels(src, stanza)
    if not labels:
        raise BackupError(
            f"the local repository {src} holds no backup of stanza {stanza}: nothing is copied to drive "
            f"{drive.label}, whose copies stay as they are. Run `lpse-backup run` again once the database "
            f"backup to the local repository succeeds."
        )
    found = copies(d.root)
    prev = found[-1] if found else None
    prev_labels = backup_labels(prev, stanza) if prev else []
    if prev_labels and prev_labels[-1] > labels[-1]:
        raise BackupError(
            f"the local repository's newest backup ({labels[-1]}) is older than drive {drive.label}'s newest "
            f"copy ({prev_labels[-1]}): was the local repository replaced? Nothing is copied; the drive keeps "
            f"its copies."
        )
    want = _files(src)
    have = _files(prev) if prev else {}

    def linkable(rel: Path) -> bool:
        old = have.get(rel)
        st = want[rel]
        return old is not None and not _is_info(rel) and (old.st_size, old.st_mtime_ns) == (st.st_size, st.st_mtime_ns)

    to_copy = [rel for rel in want if not linkable(rel)]
    need = sum(want[rel].st_size for rel in to_copy)
    free = shutil.disk_usage(d.root).free
    if need > free:
        raise MediaError(
            f"drive {drive.label} has {free / 2**30:.2f} GiB free, tonight's database copy needs "
            f"{need / 2**30:.2f} GiB: swap in the next drive of the rota, or keep fewer generations on the drives "
            f"(backup_portable_generations). The drive's earlier copies are untouched."
        )
    root = d.root / COPIES
    root.mkdir(exist_ok=True)
    for leftover in root.glob("*" + PARTIAL):  # from a copy that was killed or pulled out
        shutil.rmtree(leftover)
    work = root / (night + PARTIAL)
    copied = linked = 0
    # Data files first, the info files that name the backups last.
    for rel in sorted(want, key=lambda r: (_is_info(r), str(r))):
        dst = work / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if rel not in to_copy and prev is not None:
            try:
                os.link(prev / rel, dst)
                linked += 1
                continue
            except OSError:
                pass  # a filesystem without hard links: copy it
        copied += _copy(src / rel, dst, want[rel])
    _sync_tree(work)
    try:
        verify(Path(d.shown(work)))  # read only: by the mount point's path, so pgBackRest needs no descriptor
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    final = root / night
    if final.exists():  # the same night copied again: the new copy replaces it
        shutil.rmtree(final)
    work.rename(final)
    _point_latest(d.root, final)
    removed = 0
    found = copies(d.root)
    kept = keep(found, stanza, generations)
    for c in found:
        if c not in kept:
            shutil.rmtree(c)
            removed += 1
    fsync_path(d.root)
    return CopyResult(Path(d.shown(final)), labels[-1], len(to_copy), copied, linked, removed)


def copy_file(src: Path, drive: Drive, folder: str, keep_newest: int, read_back: Callable[[Path], None]) -> int:
    """Copy one file (a dump) to `<drive>/<folder>/`, under a temporary name until it has been read
    back whole; then keep the drive's newest `keep_newest` files of the folder (by name), whatever
    the server still has."""
    with drive.opened() as d:
        return _add_file(src, d, folder, keep_newest, read_back)


def _add_file(src: Path, d: OpenDrive, folder: str, keep_newest: int, read_back: Callable[[Path], None]) -> int:
    drive = d.drive
    dst_dir = d.root / folder
    dst_dir.mkdir(exist_ok=True)
    size = src.stat().st_size
    free = shutil.disk_usage(d.root).free
    if size > free:
        raise MediaError(
            f"drive {drive.label} has {free / 2**30:.2f} GiB free, {src.name} needs {size / 2**30:.2f} GiB: "
            "swap in the next drive of the rota. The drive's earlier dumps are untouched."
        )
    for leftover in dst_dir.glob("*" + PARTIAL):
        leftover.unlink()
    tmp = dst_dir / (src.name + PARTIAL)
    _copy(src, tmp, src.stat())
    _sync_tree(dst_dir)
    try:
        read_back(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(dst_dir / src.name)
    suffix = "".join(src.suffixes)
    for old in sorted(p for p in dst_dir.iterdir() if p.name.endswith(suffix))[: -max(1, keep_newest)]:
        old.unlink()
    return size
