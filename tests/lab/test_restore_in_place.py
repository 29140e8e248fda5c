"""A running SPSE server brought back from its portable drive (`playbooks/restore.yml -e
restore_from=portable -e restore_force=true`): the database it has is replaced by the drive's
latest copy (a new timeline), the documents with it, SPSE serves them, backups resume, and what it
commits from then on can be restored from the bucket before its next backup.

Marked `lab_rebuild` (it replaces the server's data): it runs after the other tests of its lab.
"""

from __future__ import annotations

import time
import uuid

import pytest
from conftest import run_playbook
from lpse_lab import lab
from lpse_lab.cli import LPSE_BACKUP
from restoring import has, mark, psql, remote, serves_restored_data, spse_with_new_bids

pytestmark = [pytest.mark.lab, pytest.mark.lab_rebuild]


def current_timeline(address: str) -> int:
    """The timeline PostgreSQL writes WAL on now (the first 8 hex digits of the WAL file name)."""
    return int(psql(address, "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8);"), 16)


def test_restore_playbook_brings_a_running_server_back_to_the_drives_latest_copy(
    provisioned: object, lab_config: lab.LabConfig
) -> None:
    host = spse_with_new_bids(lab_config)
    kept = f"kept-{uuid.uuid4().hex[:8]}"
    mark(host.address, kept)
    remote(host.address, f"{LPSE_BACKUP} run")
    bids = int(psql(host.address, "SELECT count(*) FROM penawaran;"))
    timeline = current_timeline(host.address)

    t0 = time.monotonic()
    run = run_playbook("restore.yml", "--limit", host.name, "-e", "restore_from=portable", "-e", "restore_force=true")
    assert run.rc == 0, run.output[-4000:]
    print(f"SPSE server back to the drive's latest copy: {time.monotonic() - t0:.0f} s")
    assert has(host.address, kept)
    # Replaced, not left as it was: PostgreSQL runs on a new timeline, the restore's.
    assert current_timeline(host.address) > timeline
    serves_restored_data(host.address, bids)
    # What it commits from now on can be restored from the bucket before its next backup: the
    # drill restores the bucket's newest backup (made on the old timeline) to a fresh mark.
    drill = remote(host.address, f"{LPSE_BACKUP} drill --target s3")
    assert "[drill database <- s3] ok" in drill, drill
