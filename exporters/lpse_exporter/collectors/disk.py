"""Filesystem capacity (statvfs) and block device I/O (/proc/diskstats) (R6).

Each filesystem carries a `role` label from configuration (database, documents, system,
backup_media …) so alerts can say "the SPSE document store" instead of /dev/vdb1.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from lpse_exporter.collectors.base import read_text

# Filesystems that hold no data of the LPSE's (kernel interfaces, memory-backed).
PSEUDO_FSTYPES = frozenset(
    [
        "autofs",
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "devtmpfs",
        "efivarfs",
        "fusectl",
        "hugetlbfs",
        "mqueue",
        "nsfs",
        "proc",
        "pstore",
        "ramfs",
        "rpc_pipefs",
        "securityfs",
        "sysfs",
        "tmpfs",
        "tracefs",
    ]
)
# Kernel and runtime mounts (a container's /run/host binds among them) are not LPSE data.
SKIP_MOUNT_PREFIXES = ("/proc/", "/sys/", "/dev/", "/run/")
# systemd PrivateTmp= gives services their own /tmp and /var/tmp: not filesystems of the host.
SKIP_MOUNTPOINTS = frozenset({"/tmp", "/var/tmp"})
SECTOR = 512  # /proc/diskstats counts 512-byte sectors whatever the device's block size
SKIP_DEVICES = ("loop", "ram", "fd", "sr")


@dataclass(frozen=True)
class Mount:
    device: str
    mountpoint: str
    fstype: str
    readonly: bool


def unescape(field: str) -> str:
    """Mount points in /proc/mounts escape space, tab, newline and backslash as octal."""
    return field.encode().decode("unicode_escape") if "\\" in field else field


def parse_mounts(text: str) -> list[Mount]:
    mounts: dict[str, Mount] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4 or parts[2] in PSEUDO_FSTYPES:
            continue
        m = Mount(parts[0], unescape(parts[1]), parts[2], "ro" in parts[3].split(","))
        if m.mountpoint.startswith(SKIP_MOUNT_PREFIXES) or m.mountpoint in SKIP_MOUNTPOINTS:
            continue
        mounts[m.mountpoint] = m  # the last mount on a path is the one that is visible
    return list(mounts.values())


def parse_diskstats(text: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 14 and not parts[2].startswith(SKIP_DEVICES):
            out[parts[2]] = [int(x) for x in parts[3:]]
    return out


class DiskSource:
    name = "disk"

    def __init__(
        self,
        root: Path = Path("/"),
        roles: Mapping[str, str] | None = None,
        statvfs: Callable[[str], os.statvfs_result] | None = None,
    ) -> None:
        self.root = root
        self.roles = dict(roles or {})
        # Tests point statvfs at real directories standing in for the captured mount points.
        self.statvfs = statvfs or (lambda mp: os.statvfs(self.root / mp.lstrip("/")))

    def read(self) -> Iterable[Metric]:
        labels = ["mountpoint", "device", "fstype", "role"]
        fams = {
            "size": GaugeMetricFamily("lpse_filesystem_size_bytes", "Filesystem size", labels=labels),
            "free": GaugeMetricFamily(
                "lpse_filesystem_free_bytes", "Free space, including root's reserve", labels=labels
            ),
            "avail": GaugeMetricFamily(
                "lpse_filesystem_avail_bytes", "Space available to unprivileged users (SPSE)", labels=labels
            ),
            "files": GaugeMetricFamily("lpse_filesystem_files", "Inodes", labels=labels),
            "files_free": GaugeMetricFamily("lpse_filesystem_files_free", "Free inodes", labels=labels),
            "readonly": GaugeMetricFamily("lpse_filesystem_readonly", "1 if mounted read-only", labels=labels),
        }
        for m in parse_mounts(read_text(self.root / "proc/mounts")):
            try:
                st = self.statvfs(m.mountpoint)
            except OSError as e:
                if m.mountpoint in self.roles:  # a disk the LPSE asked to watch: blind is a failure
                    raise OSError(f"cannot measure {m.mountpoint} ({self.roles[m.mountpoint]}): {e}") from e
                continue  # a mount point this process may not see (another user's, gone)
            lv = [m.mountpoint, m.device, m.fstype, self.roles.get(m.mountpoint, "other")]
            fams["size"].add_metric(lv, st.f_blocks * st.f_frsize)
            fams["free"].add_metric(lv, st.f_bfree * st.f_frsize)
            fams["avail"].add_metric(lv, st.f_bavail * st.f_frsize)
            fams["files"].add_metric(lv, st.f_files)
            fams["files_free"].add_metric(lv, st.f_ffree)
            fams["readonly"].add_metric(lv, 1.0 if m.readonly else 0.0)
        yield from fams.values()

        stats = parse_diskstats(read_text(self.root / "proc/diskstats"))
        dev = ["device"]
        counters = [
            ("lpse_disk_reads_completed", "Reads completed", 0, 1),
            ("lpse_disk_read_bytes", "Bytes read", 2, SECTOR),
            ("lpse_disk_writes_completed", "Writes completed", 4, 1),
            ("lpse_disk_written_bytes", "Bytes written", 6, SECTOR),
            ("lpse_disk_io_time_seconds", "Time the device was busy", 9, 0.001),
        ]
        for name, help_, idx, scale in counters:
            c = CounterMetricFamily(name, help_, labels=dev)
            for device, values in stats.items():
                c.add_metric([device], values[idx] * scale)
            yield c
