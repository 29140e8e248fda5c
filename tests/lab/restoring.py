"""What the restore tests read and write on the SPSE host (tests/lab/test_restore.py,
test_restore_in_place.py): commands as root over a fresh SSH connection each (a rebuilt host has
a new host key), markers in SPSE's audit log, and what a restored server must do."""

from __future__ import annotations

import subprocess
import time

from conftest import LAB_CA
from lpse_lab import lab
from lpse_lab.cli import DRIVE_NAME


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


def spse_with_new_bids(lab_config: lab.LabConfig) -> lab.LabHost:
    """The SPSE host, with a backup drive plugged in and new tenders, bids and their documents."""
    host = next(h for h in lab_config.hosts if h.name == "spse")
    if not lab.plugged(host):
        lab.plug(host, lab.make_drive("lpse-backup-1", 4096), DRIVE_NAME)
    remote(
        host.address,
        "-u spse SPSE_CONFIG=/etc/spse/application.conf python3 /opt/spse/current/spse-simulator.pyz generate "
        f"--tenders 2 --bids-per-tender 3 --documents-size 20M --seed {time.time_ns() % 2**31}",
    )
    return host
