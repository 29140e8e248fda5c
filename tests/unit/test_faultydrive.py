"""The lab's pulled drive (lpse_lab.faultydrive through lab.plug/unplug), on this machine alone:
a real FUSE device, loop device and ext4, no lab host. Needs root, as the lab does."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lpse_lab import lab

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts need root")


@pytest.fixture
def host() -> Iterator[lab.LabHost]:
    h = lab.LabHost(name=f"unit-drive-{os.getpid()}", address="", usb="/media")
    yield h
    lab.unplug(h, "drive")
    shutil.rmtree(h.dir, ignore_errors=True)


@pytest.fixture
def image() -> Iterator[Path]:
    label = f"unit-drive-{os.getpid()}"
    img = lab.make_drive(label, 64)
    yield img
    lab.drive_speed(img, None)
    img.unlink(missing_ok=True)
    (img.parent / f"{img.stem}.device.log").unlink(missing_ok=True)


def test_a_pull_fails_the_copy_under_way_and_the_drive_keeps_what_it_held(host: lab.LabHost, image: Path) -> None:
    lab.plug(host, image, "drive")
    mnt = lab.usb_port(host) / "drive"
    assert lab.plugged(host) == {"/media/drive": image.stem}
    kept = os.urandom(3 << 20)
    (mnt / "kept.bin").write_bytes(kept)
    os.sync()
    f = (mnt / "lost.bin").open("wb")
    f.write(os.urandom(1 << 20))
    lab.unplug(host, "drive")
    # The copy that was under way: its data never reaches the drive, and fsync says so.
    with pytest.raises(OSError) as e:
        f.flush()
        os.fsync(f.fileno())
    assert e.value.errno in (5, 30), e.value  # EIO, or EROFS once ext4 aborted its journal
    with contextlib.suppress(OSError):  # what the buffer still held fails again
        f.close()
    assert not lab.is_mounted(mnt)
    assert not any(mnt.iterdir()), "something was left where the drive was mounted"
    # Plugged in again: the journal replays, what was synced before the pull is there.
    lab.plug(host, image, "drive")
    assert (mnt / "kept.bin").read_bytes() == kept


def test_a_slow_drive_writes_at_its_speed(host: lab.LabHost, image: Path) -> None:
    lab.plug(host, image, "drive")
    lab.drive_speed(image, 1024)
    t0 = time.monotonic()
    with (lab.usb_port(host) / "drive" / "two.bin").open("wb") as f:
        f.write(os.urandom(2 << 20))
        os.fsync(f.fileno())
    took = time.monotonic() - t0
    assert 1.9 <= took < 10, took  # 2 MiB at 1 MiB/s
