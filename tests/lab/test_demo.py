"""The demo's seeding (`lpse-lab demo` = up, provision, then this): SPSE holds a busy quarter, a
drive is in, one nightly backup and one drill ran, and the screens the demo's summary points at
show those figures, not zeros.

Marked `lab_demo` so that it runs after the other lab tests that back up SPSE (its 120 MiB of
documents would make every later backup slower).
"""

from __future__ import annotations

import re
import subprocess

import pytest
from conftest import LAB_CA
from lpse_lab import lab
from lpse_lab.cli import DEMO_BIDS_PER_TENDER, DEMO_TENDERS, seed_demo
from test_runbooks import fab

pytestmark = [pytest.mark.lab, pytest.mark.lab_demo]


def test_demo_shows_real_work_on_every_screen(provisioned: object, lab_config: lab.LabConfig) -> None:
    seeded = seed_demo(lab_config)
    assert seeded["tenders"] >= DEMO_TENDERS
    assert seeded["bids"] >= DEMO_TENDERS * DEMO_BIDS_PER_TENDER
    assert seeded["documents_mib"] >= 100

    spse = next(h for h in lab_config.hosts if h.name == "spse")
    home = subprocess.run(
        ["curl", "-sf", "--cacert", str(LAB_CA), "--resolve", f"spse:443:{spse.address}", "https://spse/eproc4/"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    shown = re.search(r"Jumlah lelang: (\d+)", home.stdout)
    assert shown and int(shown[1]) == seeded["tenders"], home.stdout[-500:]

    status = fab("status", "spse")
    screen = status.stdout
    assert status.returncode == 0, screen + status.stderr[-2000:]
    db = re.search(r"Database\s+UP, spse ([\d.]+) (GiB|MiB)", screen)
    assert db and float(db[1]) > 0, screen
    copies = re.findall(r"Backup\s+(\w+) -> (\w+): last good copy (.*)", screen)
    # The database (pgBackRest), its dump and the documents, each to the drive and the bucket.
    assert {(d, t) for d, t, _ in copies} >= {
        (d, t) for d in ("database", "dump", "documents") for t in ("portable", "s3")
    }, screen
    assert all(when != "never" and "FAILED" not in when for _, _, when in copies), screen
    assert re.search(r"Drive\s+lpse-backup-\d+, [\d.]+ (GiB|MiB) free", screen), screen
    assert re.search(r"Drill\s+last restore drill passed", screen), screen
