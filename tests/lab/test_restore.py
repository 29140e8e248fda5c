"""Disaster recovery on the lab: the SPSE host is replaced by a fresh one (`lpse-lab rebuild`:
same name and address, empty disks), and `playbooks/restore.yml` makes it the SPSE server
again from the bucket to a point in time; then that server's own backups go to the drive, and
the same playbook brings it back from the drive to the drive's latest copy.

One rebuilt host serves both sources: what a fresh host needs (packages, users, the
provisioning) does not depend on where the backup comes from, and rebuilding costs minutes.
The second restore also shows that a restore replaces a server's database that is already
there (the one the first restore made, whose backups had resumed).

Marked `lab_rebuild` so that it runs after the other lab tests (it replaces a host) and before
the lab lifecycle test (which empties the lab's bucket).
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid

import pytest
from conftest import LAB_CA, run_playbook
from lpse_lab import lab
from lpse_lab.cli import DRIVE_NAME, LPSE_BACKUP, bootstrap

pytestmark = [pytest.mark.lab, pytest.mark.lab_rebuild]


def remote(address: str, command: str, stdin: str = "", check: bool = True) -> str:
    """A command as root on a lab host; a fresh SSH connection each time (the host gets
    replaced, and with it its host key)."""
    res = subprocess.run(
        lab.ssh_command(address, f"sudo {command}"), input=stdin, capture_output=True, text=True, timeout=600
    )
    if check:
        assert res.returncode == 0, (command, res.stdout[-8000:], res.stderr[-2000:])
    return res.stdout.strip()


def psql(address: str, query: str, check: bool = True) -> str:
    return remote(address, "runuser -u postgres -- psql -X -A -t -v ON_ERROR_STOP=1 -d spse", query, check)


def mark(address: str, detail: str) -> None:
    psql(address, f"INSERT INTO audit_log (actor, action, detail) VALUES ('lab-test', 'marker', '{detail}');")


def has(address: str, detail: str) -> bool:
    return psql(address, f"SELECT count(*) FROM audit_log WHERE detail = '{detail}';") == "1"


def documents_match(address: str) -> int:
    """Every bid's document is on the disk with the checksum the database recorded."""
    rows = psql(address, "SELECT dokumen_path || ' ' || dokumen_sha256 FROM penawaran;").splitlines()
    listing = "".join(f"{sha}  /var/lib/spse/documents/{path}\n" for path, sha in (r.split(" ") for r in rows))
    remote(address, "sha256sum --check --quiet -", listing)
    return len(rows)


def serves_restored_data(address: str, bids: int) -> None:
    """SPSE answers on the restored data, and backups resumed from the restored server."""
    assert documents_match(address) == bids > 0
    page = subprocess.run(
        ["curl", "-sf", "--cacert", str(LAB_CA), "--resolve", f"spse:443:{address}", "https://spse/eproc4/"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert page.returncode == 0 and "SPSE" in page.stdout
    assert psql(address, "SHOW archive_mode;") == "on"
    remote(address, "runuser -u postgres -- pgbackrest --stanza=spse check")
    assert remote(address, "systemctl is-enabled lpse-backup.timer") == "enabled"


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


def test_restore_playbook_makes_a_fresh_host_the_spse_server_again_from_either_target(
    provisioned: object, lab_config: lab.LabConfig
) -> None:
    host = next(h for h in lab_config.hosts if h.name == "spse")
    if not lab.plugged(host):
        lab.plug(host, lab.make_drive("lpse-backup-1", 4096), DRIVE_NAME)
    before, after = f"before-{uuid.uuid4().hex[:8]}", f"after-{uuid.uuid4().hex[:8]}"
    remote(
        host.address,
        "-u spse SPSE_CONFIG=/etc/spse/application.conf python3 /opt/spse/current/spse-simulator.pyz generate "
        f"--tenders 2 --bids-per-tender 3 --documents-size 20M --seed {time.time_ns() % 2**31}",
    )
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

    # The restored server's own backups reach the drive; then it is brought back from there, to
    # the drive's latest copy (a restore at a time after the newest documents snapshot of the day:
    # retention keeps one snapshot a day, so a second run today would leave none before `target`).
    since = f"since-{uuid.uuid4().hex[:8]}"
    mark(host.address, since)
    first = remote(host.address, f"{LPSE_BACKUP} run")
    # The restore asked for full backups on the new timeline, in every repository.
    for repo in ("s3", "local"):
        assert re.search(rf"\[database -> {repo}\] ok .*: full backup", first), first
    t0 = time.monotonic()
    run = run_playbook("restore.yml", "--limit", host.name, "-e", "restore_from=portable", "-e", "restore_force=true")
    took = time.monotonic() - t0
    assert run.rc == 0, run.output[-4000:]
    print(f"SPSE server back to the drive's latest copy: {took:.0f} s")
    assert has(host.address, before) and has(host.address, since) and not has(host.address, after)
    serves_restored_data(host.address, bids)
    # What it commits from now on can be restored from the bucket before its next backup: the
    # drill restores the bucket's newest backup (made on the old timeline) to a fresh mark.
    drill = remote(host.address, f"{LPSE_BACKUP} drill --target s3")
    assert "[drill database <- s3] ok" in drill, drill
