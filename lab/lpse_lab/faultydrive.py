"""A drive image whose device can be made to fail, as a USB drive pulled out of its port does.

The image is served through FUSE as one file, `drive.img`, which the lab loop-mounts as the
drive. Once the file IMAGE.pulled exists, every read, write and flush of it returns EIO: the loop
device, and so the filesystem on it, fail under whatever is writing, the way the kernel sees a
vanished disk. What reached the image before stays there: plugged in again, the filesystem
replays its journal on mount and the drive holds what it held. IMAGE.rate, when it exists, holds
a write speed in KiB/s (a slow USB stick), so that a test can pull the drive while a copy of a
few MiB is still under way.

Run by lpse_lab.lab (`python -m lpse_lab.faultydrive IMAGE DIR`), in the foreground of its own
process; lab only.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fuse import FUSE, FuseOSError, Operations

NAME = "drive.img"


class FaultyDrive(Operations):  # type: ignore[misc]
    def __init__(self, image: Path) -> None:
        self.fd = os.open(image, os.O_RDWR)
        self.flag = pulled_flag(image)
        self.rate = rate_file(image)
        self.pulled = False
        self.speed_lock = threading.Lock()  # writes share the drive's speed (not "lock": a FUSE operation)

    def _alive(self) -> None:
        # A flag file, not a signal: fuse_main holds the main thread, where Python runs handlers.
        self.pulled = self.pulled or self.flag.exists()
        if self.pulled:
            raise FuseOSError(errno.EIO)

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        if path != f"/{NAME}":
            raise FuseOSError(errno.ENOENT)
        st = os.fstat(self.fd)
        return {
            "st_mode": stat.S_IFREG | 0o600,
            "st_nlink": 1,
            "st_size": st.st_size,
            "st_mtime": st.st_mtime,
            "st_ctime": st.st_ctime,
            "st_atime": st.st_atime,
        }

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", NAME]

    def open(self, path: str, flags: int) -> int:
        self._alive()
        return 0

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        self._alive()
        return os.pread(self.fd, size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        self._alive()
        try:
            kib_s = float(self.rate.read_text())
        except (OSError, ValueError):
            kib_s = 0.0
        if kib_s > 0:
            with self.speed_lock:
                time.sleep(len(data) / 1024 / kib_s)
            self._alive()
        return os.pwrite(self.fd, data, offset)

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        raise FuseOSError(errno.EPERM)  # a drive does not change size

    def flush(self, path: str, fh: int) -> None:
        self._alive()

    def fsync(self, path: str, datasync: bool, fh: int) -> None:
        self._alive()
        os.fsync(self.fd)

    def release(self, path: str, fh: int) -> None:
        os.fsync(self.fd)

    def destroy(self, path: str) -> None:
        os.fsync(self.fd)
        os.close(self.fd)


def pulled_flag(image: Path) -> Path:
    return image.with_name(image.name + ".pulled")


def rate_file(image: Path) -> Path:
    return image.with_name(image.name + ".rate")


def main() -> None:
    image, where = Path(sys.argv[1]), sys.argv[2]
    drive = FaultyDrive(image)
    # direct_io: every read reaches this process (no page cache of the image to read from once
    # pulled); big writes: the loop device's requests arrive whole, not in 4 KiB pieces.
    FUSE(drive, where, foreground=True, nothreads=False, direct_io=True, big_writes=True, max_write=131072)


if __name__ == "__main__":
    main()
