"""`lpse-backup drive eject|insert|show`: the rotation of the portable drives."""

from __future__ import annotations

import json
from dataclasses import asdict

from lpse_backup import clock
from lpse_backup.media import Ledger, eject, insert
from lpse_backup.settings import Settings


def drive_command(s: Settings, action: str) -> int:
    ledger = Ledger.load(s.state_dir / "drives.json")
    now = clock.now()
    if action == "show":
        print(json.dumps({"rota": list(s.rota), "drives": {k: asdict(v) for k, v in ledger.drives.items()}}, indent=2))
        return 0
    if action == "eject":
        drive = eject(s.drive_mountpoint, s.rota, ledger, now)
        held = sorted({x["dataset"] for x in ledger.drives[drive.label].snapshots})
        print(
            f"drive {drive.label} is unmounted: pull it out and take it to the safe "
            f"(it holds {', '.join(held) or 'nothing yet'}). "
            f"Bring {ledger.next_drive(s.rota, drive.label)} and plug it in."
        )
        return 0
    drive = insert(s.drive_mountpoint, s.rota, ledger, now)
    print(
        f"drive {drive.label} is in at {drive.mountpoint}, {drive.free_bytes / 2**30:.1f} GiB free of "
        f"{drive.size_bytes / 2**30:.1f} GiB: the next backup run copies to it."
    )
    return 0
