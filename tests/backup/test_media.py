"""Portable media checks against real labelled filesystems (ext4 images on loop devices)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

import pytest
from lpse_backup.documents import Restic
from lpse_backup.media import Ledger, MediaError, check_drive
from lpse_backup.portable import copy_file

from tests.backup.conftest import ROTA, make_drive, plug


def test_a_rota_drive_is_recognised_by_its_label(tmp_path: Path, mountpoint: Path) -> None:
    plug(make_drive(tmp_path, "LPSE-BACKUP-B"), mountpoint)
    drive = check_drive(mountpoint, ROTA, need_bytes=1 << 20)
    assert drive.label == "LPSE-BACKUP-B"
    assert drive.device.startswith("/dev/loop")
    assert 20 << 20 < drive.free_bytes <= drive.size_bytes <= 32 << 20


def test_an_unplugged_drive_is_a_bare_directory_and_refused(mountpoint: Path) -> None:
    (mountpoint / "leftover").write_text("written while no drive was there")
    with pytest.raises(MediaError, match=r"no drive at .*Plug in the next drive of the rota"):
        check_drive(mountpoint, ROTA)


def test_a_drive_with_another_label_is_refused(tmp_path: Path, mountpoint: Path) -> None:
    plug(make_drive(tmp_path, "HOLIDAY-PHOTOS"), mountpoint)
    with pytest.raises(MediaError, match="labelled 'HOLIDAY-PHOTOS', not one of the rota"):
        check_drive(mountpoint, ROTA)


def test_a_drive_without_room_is_refused(tmp_path: Path, mountpoint: Path) -> None:
    plug(make_drive(tmp_path, "LPSE-BACKUP-A"), mountpoint)
    with pytest.raises(MediaError, match="GiB free, this run needs"):
        check_drive(mountpoint, ROTA, need_bytes=1 << 30)


def test_a_drive_pulled_under_a_write_is_never_replaced_by_the_servers_own_disk(
    tmp_path: Path, mountpoint: Path
) -> None:
    image = make_drive(tmp_path, "LPSE-BACKUP-A")
    plug(image, mountpoint)
    drive = check_drive(mountpoint, ROTA)
    key = tmp_path / "key"
    key.write_text("the site's restic key\n")
    os.chmod(key, 0o600)
    with drive.opened() as d:
        # The mount goes under the write, as when the automounter drops a pulled drive: by the
        # mount point's path restic would make the repository in the bare directory (it makes a
        # missing repository directory, and the directories of a pack it saves, itself).
        subprocess.run(["umount", "--lazy", str(mountpoint)], check=True)
        Restic(str(d.root / "documents"), key, timeout_s=60, drive=d).init()
    assert not any(mountpoint.iterdir()), "written to the server's own disk"
    dump = tmp_path / "spse-20261206T010000Z.dump.age"
    dump.write_bytes(os.urandom(4096))
    with pytest.raises(MediaError, match=r"no longer at .*Nothing was written"):
        copy_file(dump, drive, "dumps", 3, lambda p: None)
    assert not any(mountpoint.iterdir()), "written to the server's own disk"
    plug(image, mountpoint)
    assert (mountpoint / "documents" / "config").is_file()  # the write went to the drive it was checked as


def test_the_ledger_tracks_stays_snapshots_and_swaps(tmp_path: Path) -> None:
    day = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.UTC)
    ledger = Ledger.load(tmp_path / "drives.json")
    ledger.seen("LPSE-BACKUP-A", day)
    ledger.add_snapshot("LPSE-BACKUP-A", "documents", "s1", day)
    ledger.save()
    ledger = Ledger.load(tmp_path / "drives.json")
    ledger.seen("LPSE-BACKUP-A", day + dt.timedelta(days=6))
    assert not ledger.swap_due("LPSE-BACKUP-A", day + dt.timedelta(days=6), rotate_days=7)
    assert ledger.swap_due("LPSE-BACKUP-A", day + dt.timedelta(days=7), rotate_days=7)
    # B comes in: A's stay is over, B's starts.
    ledger.seen("LPSE-BACKUP-B", day + dt.timedelta(days=7))
    ledger.add_snapshot("LPSE-BACKUP-B", "documents", "s2", day + dt.timedelta(days=7))
    assert not ledger.swap_due("LPSE-BACKUP-A", day + dt.timedelta(days=8), rotate_days=7)
    assert not ledger.swap_due("LPSE-BACKUP-B", day + dt.timedelta(days=8), rotate_days=7)
    assert ledger.holders("documents") == {"LPSE-BACKUP-A": ["s1"], "LPSE-BACKUP-B": ["s2"]}
