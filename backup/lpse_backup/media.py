"""Portable media: the rota of labelled drives that travel between the server room and the safe.

A drive is recognised by its filesystem label, never by where it happens to be mounted: the
job refuses a mount point that is a bare directory on the root filesystem (a drive that is not
plugged in), a drive whose label is not in the rota, and a drive without room for the run.
Which drive was seen when, and which snapshots it holds, is kept in a ledger on the server, so
the operator can be told which drive is due to be swapped and where each snapshot lives.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lpse_backup.errors import MediaError, StateError


@dataclass(frozen=True)
class Mount:
    mountpoint: str
    source: str
    fstype: str


def _unescape(field_: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \\ooo
    return field_.encode().decode("unicode_escape") if "\\" in field_ else field_


def mounts(mountinfo: Path = Path("/proc/self/mountinfo")) -> dict[str, Mount]:
    """Visible mounts by mount point (the last mount on a path hides the ones below it)."""
    out: dict[str, Mount] = {}
    for line in mountinfo.read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) < 5 or len(rest) < 2:
            continue
        mp = _unescape(fields[4])
        out[mp] = Mount(mp, _unescape(rest[1]), rest[0])
    return out


FS_IOC_GETFSLABEL = 0x81009431  # _IOR(0x94, 49, char[256]); ext4, xfs, btrfs


def read_label(device: str, fd: int | None = None) -> str:
    """The filesystem label of the mounted drive: asked of the filesystem itself through `fd`, a
    directory of it (works where the device node is not visible, e.g. in a container), else read
    from the superblock by blkid."""
    if fd is not None:
        try:
            buf = bytearray(256)
            fcntl.ioctl(fd, FS_IOC_GETFSLABEL, buf)
            return bytes(buf).split(b"\0", 1)[0].decode(errors="replace")
        except OSError:
            pass  # a filesystem without the ioctl (vfat, old kernels): ask blkid
    res = subprocess.run(["blkid", "-p", "-s", "LABEL", "-o", "value", device], capture_output=True, text=True)
    if res.returncode not in (0, 2):  # 2: no label
        raise MediaError(f"cannot read the label of {device}: {res.stderr.strip() or 'blkid failed'}")
    return res.stdout.strip()


@dataclass(frozen=True)
class Drive:
    label: str
    mountpoint: Path
    device: str
    free_bytes: int
    size_bytes: int
    dev: int  # st_dev of its root directory when it was checked

    @contextlib.contextmanager
    def opened(self) -> Iterator[OpenDrive]:
        """The drive held open for a run of writes (a plain umount fails meanwhile). Refuses, and
        writes nothing, when the drive at the mount point is no longer the one checked."""
        fd = os.open(self.mountpoint, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if os.fstat(fd).st_dev != self.dev or read_label(self.device, fd) != self.label:
                raise MediaError(
                    f"drive {self.label} is no longer at {self.mountpoint}: it was pulled out or swapped since it "
                    f"was checked. Nothing was written to it."
                )
            yield OpenDrive(self, fd)
        finally:
            os.close(fd)


@dataclass(frozen=True)
class OpenDrive:
    """A checked drive's root directory, held open: paths under `root` reach that directory
    itself, not whatever the mount point's path leads to. A drive pulled out meanwhile (its
    mount gone) makes the writes fail; by the path they would land in the bare directory under
    the mount point, on the server's own disk."""

    drive: Drive
    fd: int

    @property
    def root(self) -> Path:
        return Path(f"/proc/self/fd/{self.fd}")

    def shown(self, path: Path | str) -> str:
        """A path under `root` as the operator knows it (under the mount point)."""
        return str(path).replace(str(self.root), str(self.drive.mountpoint), 1)


def check_drive(
    mountpoint: Path,
    rota: Sequence[str],
    need_bytes: int = 0,
    mountinfo: Path = Path("/proc/self/mountinfo"),
) -> Drive:
    """The drive mounted at `mountpoint`, if it is one of the rota with room for `need_bytes`."""
    mp = str(mountpoint)
    seen = mounts(mountinfo)
    no_drive = MediaError(
        f"no drive at {mp}: it is a plain directory on the server's own disk, and backups are never "
        f"written there. Plug in the next drive of the rota ({', '.join(rota)}) and mount it at {mp}."
    )
    if mp not in seen:
        raise no_drive
    mount = seen[mp]
    try:
        fd = os.open(mp, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise MediaError(f"cannot open the drive at {mp}: {e.strerror}. Unplug it and plug it in again.") from e
    try:
        dev = os.fstat(fd).st_dev
        if dev == os.stat(mountpoint.parent).st_dev:
            raise no_drive  # unmounted between the look at the mounts and the open
        label = read_label(mount.source, fd)
        st = os.statvfs(fd)
    finally:
        os.close(fd)
    if label not in rota:
        raise MediaError(
            f"the drive at {mp} ({mount.source}) is labelled {label or '(no label)'!r}, not one of the rota "
            f"({', '.join(rota)}): refusing to write to it. Plug in a rota drive, or prepare this one "
            f"with `lpse-backup prepare-drive`."
        )
    free, size = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    if free < need_bytes:
        raise MediaError(
            f"drive {label} at {mp} has {free / 2**30:.2f} GiB free, this run needs {need_bytes / 2**30:.2f} GiB: "
            f"swap in the next drive of the rota, or lower the drive retention."
        )
    return Drive(label, mountpoint, mount.source, free, size, dev)


# --- the ledger -------------------------------------------------------------------------


@dataclass
class DriveRecord:
    label: str
    first_seen: str = ""
    last_seen: str = ""  # when it was last plugged in here: the start of its stay in the server room
    arrived: str = ""
    left: str = ""  # when it was last taken out (to the safe)
    snapshots: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Ledger:
    """Which drive was here when, and which snapshots it holds. Kept on the server (never on a
    drive alone: a drive in the safe cannot tell us what it holds)."""

    path: Path
    drives: dict[str, DriveRecord] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Ledger:
        if not path.exists():
            return cls(path)
        try:
            data = json.loads(path.read_text())
            return cls(path, {k: DriveRecord(**v) for k, v in data["drives"].items()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise StateError(
                f"the drive ledger {path} is damaged ({e.__class__.__name__}: {e}): the drive's copies are not "
                f"made until it is fixed. Move it aside (`mv {path} {path}.damaged`): the next run starts a new "
                "ledger. What each drive holds is on the drive itself (`pgbackrest-generations/`, `dumps/`, "
                "`restic snapshots`)."
            ) from e

    def save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"drives": {k: asdict(v) for k, v in self.drives.items()}}, indent=2) + "\n")
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        tmp.replace(self.path)

    def seen(self, label: str, now: dt.datetime) -> DriveRecord:
        """Record that `label` is plugged in now; a drive that was away starts a new stay."""
        stamp = now.isoformat(timespec="seconds")
        rec = self.drives.setdefault(label, DriveRecord(label, first_seen=stamp))
        for other in self.drives.values():
            if other.label != label:
                other.arrived = ""  # only one drive is in the server at a time
        if not rec.arrived:
            rec.arrived = stamp
        rec.last_seen = stamp
        return rec

    def add_snapshot(self, label: str, dataset: str, snapshot: str, now: dt.datetime) -> None:
        self.drives[label].snapshots.append(
            {"dataset": dataset, "snapshot": snapshot, "time": now.isoformat(timespec="seconds")}
        )

    def swap_due(self, label: str, now: dt.datetime, rotate_days: int) -> bool:
        """True when `label` has been in the server room `rotate_days` or longer."""
        rec = self.drives.get(label)
        if rec is None or not rec.arrived:
            return False
        return now - dt.datetime.fromisoformat(rec.arrived) >= dt.timedelta(days=rotate_days)

    def taken_out(self, label: str, now: dt.datetime) -> None:
        """Record that `label` left the server room (ejected for the safe): its stay is over."""
        rec = self.drives.setdefault(label, DriveRecord(label, first_seen=now.isoformat(timespec="seconds")))
        rec.arrived = ""
        rec.left = now.isoformat(timespec="seconds")

    def next_drive(self, rota: Sequence[str], current: str) -> str:
        """The drive to bring from the safe: the one of the rota away from the server longest
        (a drive never seen here comes first)."""
        others = [label for label in rota if label != current] or list(rota)
        return min(others, key=lambda label: self.drives[label].last_seen if label in self.drives else "")

    def holders(self, dataset: str) -> dict[str, list[str]]:
        """For each drive, the snapshots of `dataset` it holds (newest last)."""
        return {
            label: [s["snapshot"] for s in rec.snapshots if s["dataset"] == dataset]
            for label, rec in self.drives.items()
        }


# --- rotation: taking a drive out, bringing the next one in --------------------------------


def eject(mountpoint: Path, rota: Sequence[str], ledger: Ledger, now: dt.datetime) -> Drive:
    """Flush and unmount the drive so that it can be pulled out safely, and note that it left.
    The caller makes sure no backup or drill is writing to it."""
    drive = check_drive(mountpoint, rota)
    os.sync()
    res = subprocess.run(["umount", str(mountpoint)], capture_output=True, text=True)
    if res.returncode != 0:
        raise MediaError(
            f"could not unmount drive {drive.label} at {mountpoint}: {res.stderr.strip()}. "
            f"Something still uses it (`fuser -vm {mountpoint}` shows what); do not pull it out yet."
        )
    ledger.taken_out(drive.label, now)
    ledger.save()
    return drive


def insert(mountpoint: Path, rota: Sequence[str], ledger: Ledger, now: dt.datetime) -> Drive:
    """Mount the rota drive that is plugged in (found by its label) at `mountpoint`, unless one is
    mounted there already, check it and note its arrival."""
    mp = str(mountpoint)
    if mp not in mounts():
        found = []
        for label in rota:
            res = subprocess.run(["blkid", "-t", f"LABEL={label}", "-o", "device"], capture_output=True, text=True)
            found += [(label, dev) for dev in res.stdout.split()]
        if not found:
            raise MediaError(
                f"no drive of the rota ({', '.join(rota)}) is plugged in: plug one in (or prepare a new one "
                f"with `lpse-backup prepare-drive`) and try again."
            )
        if len(found) > 1:
            raise MediaError(
                f"more than one drive of the rota is plugged in ({', '.join(d for _, d in found)}): "
                "keep one in the server, take the others to the safe."
            )
        label, device = found[0]
        res = subprocess.run(
            ["mount", "-o", "nodev,nosuid,noexec", device, mp], capture_output=True, text=True
        )  # fmt: skip
        if res.returncode != 0:
            raise MediaError(f"could not mount drive {label} ({device}) at {mp}: {res.stderr.strip()}")
    drive = check_drive(mountpoint, rota)
    ledger.seen(drive.label, now)
    ledger.save()
    return drive


def prepare_drive(device: str, label: str, rota: Sequence[str], force: bool = False) -> None:
    """Format a new drive of the rota: ext4 (journalled, so a drive pulled out mid-write
    recovers), labelled, no reserved blocks. Refuses a label outside the rota, a mounted
    device, and a device that already holds a filesystem unless `force`."""
    if label not in rota:
        raise MediaError(f"label {label!r} is not in the rota ({', '.join(rota)}): add it to backup_portable_rota")
    real = os.path.realpath(device)
    if any(os.path.realpath(m.source) == real for m in mounts().values()):
        raise MediaError(f"{device} is mounted: unmount it before formatting")
    existing = subprocess.run(["blkid", "-p", "-o", "value", "-s", "TYPE", device], capture_output=True, text=True)
    if existing.stdout.strip() and not force:
        raise MediaError(
            f"{device} already holds a {existing.stdout.strip()} filesystem: formatting erases it. "
            f"Check that this is the new drive, then run again with --yes."
        )
    res = subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-L", label, device], capture_output=True, text=True)
    if res.returncode != 0:
        raise MediaError(f"mkfs.ext4 on {device} failed: {res.stderr.strip()[-300:]}")
