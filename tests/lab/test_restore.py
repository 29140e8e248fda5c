"""Disaster recovery on the lab: the SPSE host is replaced by a fresh one (`lpse-lab rebuild`:
same name and address, empty disks), and `playbooks/restore.yml` makes it the SPSE server
again from the bucket to a point in time; then its own backups start again, full ones on the
new timeline. Bringing a running server back from the drive is tests/lab/test_restore_in_place.py
(another lab's: each of the two takes minutes).

Marked `lab_rebuild` so that it runs after the other lab tests (it replaces a host) and before
the lab lifecycle test (which empties the lab's bucket).
"""

from __future__ import annotations

import re
import time
import uuid

import pytest
from conftest import run_playbook
from lpse_lab import lab
from lpse_lab.cli import LPSE_BACKUP, bootstrap
from restoring import has, mark, psql, remote, serves_restored_data, spse_with_new_bids

pytestmark = [pytest.mark.lab, pytest.mark.lab_rebuild]


def test_restore_refuses_a_group_and_a_server_that_holds_spse_data(
    provisioned: object,
    address: dict[str, str],
) -> None:
    rows = psql(address["spse"], "SELECT count(*) FROM penawaran;")
    group = run_playbook("restore.yml", "--limit", "spse_servers", "-e", "restore_from=s3")
    assert group.rc != 0 and "onto which one server by its inventory name" in group.text, group.text[-2000:]
    assert "this run would reach spse" in group.text
    unforced = run_playbook("restore.yml", "--limit", "spse", "-e", "restore_from=s3")
    assert unforced.rc != 0, unforced.text[-2000:]
    assert "spse already holds SPSE data (a PostgreSQL cluster in /var/lib/postgresql/15/main" in unforced.text
    assert "run again with -e restore_force=true" in unforced.text
    # Refused before anything was touched: SPSE still serves the same database.
    assert psql(address["spse"], "SELECT count(*) FROM penawaran;") == rows
    assert remote(address["spse"], "systemctl is-active spse") == "active"


def test_restore_playbook_makes_a_fresh_host_the_spse_server_again_from_the_bucket(
    provisioned: object, lab_config: lab.LabConfig
) -> None:
    host = spse_with_new_bids(lab_config)
    before, after = f"before-{uuid.uuid4().hex[:8]}", f"after-{uuid.uuid4().hex[:8]}"
    remote(host.address, f"{LPSE_BACKUP} run")
    mark(host.address, before)
    time.sleep(1.5)
    target = psql(host.address, "SELECT to_char(clock_timestamp(), 'YYYY-MM-DD\"T\"HH24:MI:SS.USOF:00');")
    time.sleep(1.5)
    mark(host.address, after)
    psql(host.address, "SELECT pg_switch_wal();")
    time.sleep(5)  # archive_command pushes the switched segment to the bucket
    bids = int(psql(host.address, "SELECT count(*) FROM penawaran;"))

    t0 = time.monotonic()
    lab.rebuild(lab_config, host)
    bootstrap(host.name)
    fresh = remote(host.address, "sh -c 'test -e /var/lib/postgresql && echo old || echo fresh'")
    assert fresh == "fresh", "the rebuilt host still has a database"
    run = run_playbook("restore.yml", "--limit", host.name, "-e", "restore_from=s3", "-e", f"restore_time={target}")
    took = time.monotonic() - t0
    assert run.rc == 0, run.output[-4000:]
    print(f"fresh host to SPSE serving restored data from s3: {took:.0f} s")
    assert has(host.address, before)
    assert not has(host.address, after), "the point in time was not honoured"
    serves_restored_data(host.address, bids)

    # The restored server's own backups start again: full ones on the new timeline, in every
    # repository (the restore asked for them).
    first = remote(host.address, f"{LPSE_BACKUP} run")
    for repo in ("s3", "local"):
        assert re.search(rf"\[database -> {repo}\] ok .*: full backup", first), first
