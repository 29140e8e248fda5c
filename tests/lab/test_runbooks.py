"""The on-call runbooks (fabfile.py) against the lab, as on-call staff run them: `fab <task> <host>`
from the checkout with LPSE_INVENTORY set. What they report is compared with what the host
says itself; what they change is checked on the host; what they must not change is too.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import re
import shutil
import subprocess
import tarfile
import time
import urllib.parse
from pathlib import Path

import pytest
import testinfra
from conftest import LAB_CA, REPO, front_door, monitoring_api, ops_login, run_playbook
from lpse_lab import lab, oncall
from lpse_lab.cli import DRIVE_NAME, LPSE_BACKUP, ansible_env, lab_secrets

pytestmark = pytest.mark.lab

RECORDS = "/var/lib/lpse-ops/maintenance"
CLEANED = ("/opt/spse/releases/test-old-a", "/var/tmp/lpse-diagnose-test", "/var/cache/apt/archives/test_1.0_all.deb")


def fab(*args: str, timeout: float = 600, inventory: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`fab` as on-call runs it, with no terminal (so nothing can wait for an answer)."""
    env = ansible_env() | {"LPSE_INVENTORY": str(inventory or "inventories/lab"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "fab"), *args],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def spse_pid(spse: testinfra.host.Host) -> int:
    return int(spse.check_output("systemctl show -p MainPID --value spse"))


def wait_page_up(spse: testinfra.host.Host, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if spse.run("curl -skf --resolve spse:443:127.0.0.1 https://spse/eproc4/ -o /dev/null").rc == 0:
            return
        time.sleep(1)
    raise AssertionError("SPSE did not come back")


def test_status_is_one_screen_that_matches_the_host(spse: testinfra.host.Host, provisioned: object) -> None:
    res = fab("status", "spse", "--json")
    assert res.returncode in (0, 1), res.stderr
    found = json.loads(res.stdout)
    host = found["host"]
    assert host["spse"]["state"] == "up" and host["database"]["up"]
    assert host["units"]["spse"]["active"] == "active" and host["units"]["nginx"]["active"] == "active"
    docs = next(d for d in host["disks"] if d["mountpoint"] == "/var/lib/spse/documents")
    size, avail = (int(x) for x in spse.check_output("df -B1 --output=size,avail /var/lib/spse/documents").split()[-2:])
    assert docs["size"] == size and abs(docs["avail"] - avail) < 8 << 20
    total = int(spse.check_output("awk '/^MemTotal/ {print $2}' /proc/meminfo")) * 1024
    assert host["memory"]["total"] == total
    interfaces = spse.check_output("ip -o link show | cut -d: -f2 | cut -d@ -f1").split()
    assert sorted(link["interface"] for link in host["links"]) == sorted(i for i in interfaces if i != "lo")
    assert all(link["state"] == "up" for link in host["links"]), host["links"]
    # The screen itself: one line per subject, problems flagged with "!!".
    text = fab("status", "spse")
    assert "SPSE       UP" in text.stdout and "Database   UP" in text.stdout, text.stdout
    assert "/var/lib/spse/documents:" in text.stdout and "RAM" in text.stdout and "Alert" in text.stdout
    # The server room: the UPS as upsd reports it (the lab's simulated one, on mains), and the
    # sensors through the exporter's own reader (the lab's containers have none).
    (ups,) = host["ups"]
    assert ups["ok"] and ups["values"]["ups.status"] == "OL", ups
    assert "Power      UPS ups@127.0.0.1:3493 on mains (OL), charge 100 %" in text.stdout, text.stdout
    assert host["temperatures"] == {"ok": True, "detail": "", "sensors": []}
    assert "Temp       no sensors on this host" in text.stdout


def test_status_judges_with_the_alert_rules_thresholds(tmp_path: Path, provisioned: object) -> None:
    """One place for the thresholds: raised in the monitoring server's inventory, the status
    screen follows (the rules follow too: tests/unit/test_alert_rules.py)."""
    inv = tmp_path / "inv"
    shutil.copytree(lab.INVENTORY, inv)
    (inv / "group_vars/monitoring_servers/thresholds.yml").write_text(
        "prometheus_alert_memory_critical_ratio: 0.995\nprometheus_alert_disk_critical_ratio: 0.995\n"
    )
    strict = fab("status", "spse", inventory=inv)
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert re.search(r"^  RAM +!! ", strict.stdout, re.M) and re.search(r"^  Disk +!! /:", strict.stdout, re.M)
    usual = fab("status", "spse")
    assert not re.search(r"^  (RAM|Disk) +!! ", usual.stdout, re.M), usual.stdout


def test_status_shows_spse_down_with_its_alert_and_restart_spse_brings_it_back(
    spse: testinfra.host.Host, provisioned: object
) -> None:
    spse.run("systemctl kill -s KILL spse; systemctl stop spse")
    try:
        deadline, res = time.monotonic() + 90, None
        while time.monotonic() < deadline:
            res = fab("status", "spse", "--json")
            found = json.loads(res.stdout)
            if any(
                a["labels"]["alertname"] == "SpseDown" and a["status"]["state"] == "active" for a in found["alerts"]
            ):
                break
            time.sleep(3)
        assert res is not None and res.returncode == 1, "status must exit 1 when SPSE is down"
        assert found["host"]["spse"]["state"] == "down"
        assert any(p.startswith("SPSE: DOWN") for p in found["problems"]), found["problems"]
        assert any(a["labels"]["alertname"] == "SpseDown" for a in found["alerts"]), "SpseDown not shown within 90 s"
        screen = fab("status", "spse").stdout
        assert "!! DOWN" in screen and "SpseDown" in screen, screen

        # A changer without a terminal and without --yes does nothing.
        refused = fab("restart-spse", "spse")
        assert refused.returncode == 1 and "not confirmed" in refused.stderr
        assert spse.run("systemctl is-active spse").stdout.strip() != "active"
        dry = fab("restart-spse", "spse", "--dry-run")
        assert dry.returncode == 0 and "dry run" in dry.stdout
        assert spse.run("systemctl is-active spse").stdout.strip() != "active"

        done = fab("restart-spse", "spse", "--yes")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "up again after" in done.stdout
        assert spse.run("systemctl is-active spse").stdout.strip() == "active"
    finally:
        spse.run("systemctl start spse")
        wait_page_up(spse)


def test_restart_spse_replaces_the_running_process(spse: testinfra.host.Host, provisioned: object) -> None:
    before = spse_pid(spse)
    assert fab("restart-spse", "spse", "--dry-run").returncode == 0
    assert spse_pid(spse) == before, "a dry run restarted SPSE"
    res = fab("restart-spse", "spse", "--yes")
    assert res.returncode == 0, res.stderr
    assert spse_pid(spse) not in (before, 0)
    assert fab("restart-spse", "monitor", "--yes").stderr.count("monitor is not in spse_servers") == 1


def test_diagnose_bundle_has_logs_and_states_and_no_secrets(
    spse: testinfra.host.Host, provisioned: object, tmp_path: Path
) -> None:
    res = fab("diagnose", "spse", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    bundles = list(tmp_path.glob("lpse-diagnose-spse-*.tar.gz"))
    assert len(bundles) == 1 and not list(tmp_path.glob("*.part"))
    with tarfile.open(bundles[0]) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    root = next((tmp_path / "x").iterdir())
    files = {p.name: p.read_text(errors="replace") for p in root.iterdir()}
    assert json.loads(files["status.json"])["units"]["spse"]["active"] == "active"
    assert "spse.service" in files["services.txt"] and "Active:" in files["services.txt"]
    assert "Filesystem" in files["disk.txt"] and "Mem:" in files["memory.txt"]
    assert "LISTEN" in files["network.txt"] and "table inet" in files["firewall.txt"]
    assert files["journal-spse-2h.txt"].strip()
    everything = "\n".join(files.values())
    for name, secret in lab_secrets().items():
        if len(secret) >= 16:
            assert secret not in everything, f"{name} is in the diagnose bundle"
    assert spse.run("ls -d /var/tmp/lpse-diagnose-*").rc != 0, "the bundle was left on the host"


def test_disk_cleanup_lists_by_default_and_deletes_only_its_targets(
    spse: testinfra.host.Host, provisioned: object
) -> None:
    current = spse.check_output("readlink -f /opt/spse/current")
    spse.run(
        "install -d /opt/spse/releases/test-old-a /opt/spse/releases/test-old-b && "
        "head -c 3M /dev/urandom > /opt/spse/releases/test-old-a/spse.pyz && "
        "touch -d 2020-01-01 /opt/spse/releases/test-old-a && touch -d 2021-01-01 /opt/spse/releases/test-old-b && "
        "install -d /var/tmp/lpse-diagnose-test && head -c 2M /dev/urandom > /var/tmp/lpse-diagnose-test/x && "
        "head -c 1M /dev/urandom > /var/cache/apt/archives/test_1.0_all.deb && "
        "echo keep > /var/tmp/keep-me && echo keep > /var/cache/apt/archives/keep-me.txt"
    )
    try:
        listed = fab("disk-cleanup", "spse")
        assert listed.returncode == 0, listed.stderr
        assert "dry run: nothing deleted" in listed.stdout
        for path in CLEANED:
            assert spse.file(path).exists, f"the dry run deleted {path}"
        assert "old-spse-releases" in listed.stdout and "diagnose-bundles" in listed.stdout

        refused = fab("disk-cleanup", "spse", "--no-dry-run")
        assert refused.returncode == 1 and "not confirmed" in refused.stderr
        assert spse.file("/opt/spse/releases/test-old-a").exists

        done = fab("disk-cleanup", "spse", "--no-dry-run", "--yes")
        assert done.returncode == 0, done.stderr
        assert "freed" in done.stdout
        for path in CLEANED:
            assert not spse.file(path).exists, f"{path} was listed but not deleted"
        # Kept: what is not a target, the running release and the one before it (a rollback).
        for path in (
            "/var/tmp/keep-me",
            "/var/cache/apt/archives/keep-me.txt",
            current,
            "/opt/spse/releases/test-old-b",
        ):
            assert spse.file(path).exists, f"disk-cleanup deleted {path}"
        wait_page_up(spse, 10)
    finally:
        spse.run(
            "rm -rf /opt/spse/releases/test-old-a /opt/spse/releases/test-old-b /var/tmp/lpse-diagnose-test "
            "/var/tmp/keep-me /var/cache/apt/archives/keep-me.txt /var/cache/apt/archives/test_1.0_all.deb"
        )


def test_restore_dry_run_says_the_playbook_and_changes_nothing(provisioned: object) -> None:
    res = fab("restore", "spse", "--source", "portable", "--dry-run")
    assert res.returncode == 0, res.stderr
    assert "restore.yml --limit spse -e restore_from=portable" in res.stdout
    assert "restore_force" not in res.stdout
    forced = fab("restore", "spse", "--source", "portable", "--force", "--dry-run")
    assert "restore.yml --limit spse -e restore_from=portable -e restore_force=true" in forced.stdout, forced.stderr
    bad = fab("restore", "spse", "--source", "tape", "--dry-run")
    assert bad.returncode == 1 and "--source must be s3" in bad.stderr


def test_rotate_drive_ejects_only_a_drive_with_good_copies_and_checks_the_next_one_in(
    spse: testinfra.host.Host, lab_config: lab.LabConfig, provisioned: object
) -> None:
    host = next(h for h in lab_config.hosts if h.name == "spse")
    for name in list(lab.plugged(host)):
        lab.unplug(host, Path(name).name)
    lab.plug(host, lab.make_drive("lpse-backup-1", 4096), DRIVE_NAME)
    spse.run(f"{LPSE_BACKUP} run")  # copies to the drive (the off-room ones do not matter here)
    mountpoint = f"/media/{DRIVE_NAME}"

    # Not while a backup runs: the drive would leave with half a copy.
    spse.run("systemctl start --no-block lpse-backup.service")
    deadline = time.monotonic() + 30
    while "run" not in spse.run("cat /var/lib/lpse-backup/lock").stdout and time.monotonic() < deadline:
        time.sleep(0.2)
    busy = fab("rotate-drive", "spse", "--yes")
    assert busy.returncode == 1 and "must wait" in busy.stderr, busy.stdout + busy.stderr
    assert spse.mount_point(mountpoint).exists
    # A oneshot unit is "activating" while it runs.
    spse.run('while [ "$(systemctl show -p ActiveState --value lpse-backup.service)" = activating ]; do sleep 1; done')

    dry = fab("rotate-drive", "spse", "--dry-run")
    assert dry.returncode == 0 and "would flush and unmount drive lpse-backup-1" in dry.stdout, dry.stdout + dry.stderr
    assert spse.mount_point(mountpoint).exists

    out = fab("rotate-drive", "spse", "--yes")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "lpse-backup-1 is unmounted: pull it out" in out.stdout and "Bring lpse-backup-2" in out.stdout
    assert not spse.mount_point(mountpoint).exists
    ledger = json.loads(spse.check_output(f"{LPSE_BACKUP} drive show"))
    assert ledger["drives"]["lpse-backup-1"]["left"] and not ledger["drives"]["lpse-backup-1"]["arrived"]
    prom = spse.check_output("cat /var/lib/lpse-exporter/textfile/status.prom")
    assert re.search(r'^lpse_backup_portable_media_present\{label=""\} 0', prom, re.M), prom

    # The drive is pulled out; the next one comes from the safe.
    lab.unplug(host, DRIVE_NAME)
    lab.plug(host, lab.make_drive("lpse-backup-2", 4096), DRIVE_NAME)
    back = fab("rotate-drive", "spse", "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert "drive lpse-backup-2 is in at /media/lpse-backup" in back.stdout
    ledger = json.loads(spse.check_output(f"{LPSE_BACKUP} drive show"))
    assert ledger["drives"]["lpse-backup-2"]["arrived"]


def test_maintenance_is_recorded_and_refused_in_a_tender_closing_blackout(
    monitor: testinfra.host.Host, address: dict[str, str], provisioned: object
) -> None:
    wib = dt.timezone(dt.timedelta(hours=7))
    now = dt.datetime.now(wib).replace(microsecond=0)
    end = (now + dt.timedelta(minutes=50)).isoformat()
    blackout = {
        "maintenance_blackouts": [
            {"start": (now + dt.timedelta(minutes=30)).isoformat(), "end": (now + dt.timedelta(hours=2)).isoformat(),
             "reason": "Penutupan tender 123 (lab)"}
        ]
    }  # fmt: skip
    on = {"maintenance": "on", "maintenance_end": end, "maintenance_reason_id": "Uji 'pemeliharaan' lab"}
    refused = run_playbook("maintenance.yml", "-e", json.dumps(on | blackout))
    assert refused.rc != 0 and "overlaps the tender-closing blackout Penutupan tender 123 (lab)" in refused.text
    status = subprocess.run(
        ["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "--resolve", f"spse:443:{address['spse']}",
         "https://spse/eproc4/"], capture_output=True, text=True, timeout=30,
    ).stdout  # fmt: skip
    assert status == "200", "a refused window must not put the page up"
    epoch = int(dt.datetime.fromisoformat(end).timestamp())
    assert not monitor.file(f"{RECORDS}/{epoch}.json").exists

    try:
        forced = run_playbook("maintenance.yml", "-e", json.dumps(on | blackout | {"maintenance_force": True}))
        assert forced.rc == 0, forced.output[-3000:]
        record = json.loads(monitor.file(f"{RECORDS}/{epoch}.json").content_string)
        assert record["end"] == end and record["ended_at"] is None
        assert record["reason_id"] == "Uji 'pemeliharaan' lab" and record["hosts"] == ["spse"]
        assert [b["reason"] for b in record["forced_over_blackouts"]] == ["Penutupan tender 123 (lab)"]
    finally:
        off = fab("maintenance-off", "--yes")
    assert off.returncode == 0, off.stdout[-3000:] + off.stderr
    record = json.loads(monitor.file(f"{RECORDS}/{epoch}.json").content_string)
    assert record["ended_at"] and dt.datetime.fromisoformat(record["ended_at"]) <= dt.datetime.now(dt.UTC)

    # The same through fab, outside any blackout: a reason with spaces and quotes arrives as typed,
    # and the Pokja and the ULP are told by mail.
    end2 = (now + dt.timedelta(minutes=20)).isoformat()
    try:
        t0 = time.time()
        res = fab("maintenance-on", "--end", end2, "--reason-id", 'Ganti disk "sda"', "--yes")
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr
        mail = oncall.wait_for(lambda: oncall.mails(lab.ONCALL_DIR, t0), lambda m: "Pemeliharaan SPSE" in m.subject,
                               60)  # fmt: skip
        assert mail is not None and 'Alasan: Ganti disk "sda"' in mail.body, "no maintenance notice by mail"
        record = json.loads(
            monitor.file(f"{RECORDS}/{int(dt.datetime.fromisoformat(end2).timestamp())}.json").content_string
        )
        assert record["reason_id"] == 'Ganti disk "sda"' and record["forced_over_blackouts"] == []
    finally:
        assert fab("maintenance-off", "--yes").returncode == 0


def test_maintenance_is_refused_over_a_closing_in_spses_own_schedule(
    spse: testinfra.host.Host, address: dict[str, str], provisioned: object
) -> None:
    """A tender closing that only SPSE's database knows of (none in the inventory): the exporter
    reads it with its read-only login, Prometheus has it, and a window reaching into the two hours
    before it is refused, naming the tender; one that ends before them is not refused for it."""
    wib = dt.timezone(dt.timedelta(hours=7))
    now = dt.datetime.now(wib).replace(microsecond=0)
    closes = now + dt.timedelta(hours=6)  # clear of the other tests' windows (an hour at most)
    code = spse.check_output(
        "sudo -u spse SPSE_CONFIG=/etc/spse/application.conf python3 /opt/spse/current/spse-simulator.pyz tender "
        f"--name 'Uji penutupan lab' --opens {(now - dt.timedelta(days=1)).isoformat()} --closes {closes.isoformat()}"
    ).strip()
    deadline, seen = time.monotonic() + 90, list[dict]()
    while time.monotonic() < deadline and not seen:
        query = urllib.parse.quote(f'lpse_spse_schedule_stage_closes_timestamp_seconds{{tender="{code}"}}')
        seen = monitoring_api(address["monitor"], "prometheus", f"api/v1/query?query={query}")["data"]["result"]
        time.sleep(2)
    assert seen and float(seen[0]["value"][1]) == closes.timestamp(), "the exporter did not report the closing"
    assert seen[0]["metric"]["name"] == "Uji penutupan lab"
    end = (closes - dt.timedelta(hours=2) + dt.timedelta(minutes=10)).isoformat()
    refused = run_playbook("maintenance.yml", "-e", json.dumps({"maintenance": "on", "maintenance_end": end}))
    assert refused.rc != 0, refused.output[-3000:]
    assert f"tender {code} (Uji penutupan lab) pukul {closes.strftime('%d-%m-%Y %H:%M')} WIB" in refused.text
    status = subprocess.run(
        ["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "--resolve", f"spse:443:{address['spse']}",
         "https://spse/eproc4/"], capture_output=True, text=True, timeout=30,
    ).stdout  # fmt: skip
    assert status == "200", "a refused window must not put the page up"
    spse.run(f"sudo -u postgres psql -d spse -c \"DELETE FROM jadwal WHERE lelang_id IN "
             f"(SELECT id FROM lelang WHERE kode = '{code}')\"")  # fmt: skip
    # The read-only login reads the schedule and nothing else.
    denied = spse.run(
        "sudo -u lpse-exporter psql -X -h /var/run/postgresql -d spse -c 'SELECT count(*) FROM penawaran'"
    )
    assert denied.rc != 0 and "permission denied" in denied.stderr


def test_visits_to_the_server_room_are_kept_on_the_monitoring_server(
    monitor: testinfra.host.Host, provisioned: object
) -> None:
    refused = fab("visit-in", "--visitor", "Budi Santoso", "--purpose", "Ganti baterai UPS")
    assert refused.returncode == 1 and "--allowed-by" in refused.stderr, refused.stdout + refused.stderr
    res = fab(
        "visit-in", "--visitor", "Budi Santoso", "--organisation", "PT UPS Nusantara", "--purpose",
        "Ganti baterai UPS", "--allowed-by", "Kepala LPSE", "--escort", "Sari",
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    visit = res.stdout.split(":", 1)[0].strip()
    path = f"/var/lib/lpse-ops/visits/{visit}.json"
    record = json.loads(monitor.file(path).content_string)
    assert (record["visitor"], record["allowed_by"], record["escort"], record["left"]) == (
        "Budi Santoso", "Kepala LPSE", "Sari", None,
    )  # fmt: skip
    assert record["recorded_by"] == getpass.getuser()
    assert abs(record["entered"] - time.time()) < 120
    assert visit in fab("visits", "--open").stdout
    assert fab("visit-out", visit).returncode == 0
    assert visit not in fab("visits", "--open").stdout and visit in fab("visits").stdout
    assert json.loads(monitor.file(path).content_string)["left"] >= record["entered"]
    again = fab("visit-out", visit)
    assert again.returncode == 1 and "already left" in again.stderr


def test_on_call_tells_the_public_page_what_is_known_and_keeps_the_helpdesk_reports(
    monitor: testinfra.host.Host, address: dict[str, str], provisioned: object
) -> None:
    """R14 from the checkout: an incident opened and updated with fab shows on the deployed public
    page at once, each update with its time; a bidder's report is tied to it and answered."""
    refused = fab("incident-open", "--summary-id", "Unggah gagal (lab)", "--message-id", "x", "--severity", "huge")
    assert refused.returncode == 1 and "huge" in refused.stderr, refused.stdout + refused.stderr
    t0 = time.time()
    res = fab("incident-open", "--summary-id", "Unggah dokumen penawaran gagal (lab)", "--message-id",
              "Sedang kami periksa", "--affects", "upload", "--affects", "login", "--severity", "minor")  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    iid = res.stdout.split(":", 1)[0].strip()
    assert "notice sent to pokja@lab.lpse, ulp@lab.lpse" in res.stdout, res.stdout
    try:
        # The Pokja and the ULP are told through the site's relay (STARTTLS, a login).
        mail = oncall.wait_for(lambda: oncall.mails(lab.ONCALL_DIR, t0),
                               lambda m: "Unggah dokumen penawaran gagal (lab)" in m.subject, 60)  # fmt: skip
        assert mail is not None and mail.recipients == ("pokja@lab.lpse", "ulp@lab.lpse")
        assert mail.subject == "[LPSE Lab] Sedang diselidiki: Unggah dokumen penawaran gagal (lab)"
        assert "Sedang kami periksa" in mail.body and "https://monitor/" in mail.body
        page = front_door(address["monitor"], "/")[1].decode()
        live = re.search(rf'<div class="live" id="live-{re.escape(iid)}" data-severity="minor">(.*?)</div>', page)
        assert live and "Sedang diselidiki</b>: Sedang kami periksa" in live[1] and "Masuk (login)" in live[1]
        code, body = front_door(address["monitor"], "/status.json")
        status = json.loads(body)
        assert code == 200 and iid in [i["id"] for i in status["open_incidents"]] and status["state"] == "up"
        code, body = front_door(address["monitor"], "/feed.atom")
        assert code == 200 and b"[Sedang diselidiki] Unggah dokumen penawaran gagal (lab)" in body
        report = fab("helpdesk-report", "--reporter", "Budi (CV Maju)", "--summary", "Unggah penawaran gagal",
                     "--urgency", "high", "--impact", "several", "--incident", iid)  # fmt: skip
        assert report.returncode == 0, report.stdout + report.stderr
        rid = report.stdout.split(":", 1)[0].strip()
        assert rid in fab("helpdesk", "--open").stdout
        assert monitor.file(f"/var/lib/lpse-ops/helpdesk/{rid}.json").user == "lpse-status"
        assert fab("helpdesk-told", rid).returncode == 0 and rid not in fab("helpdesk", "--open").stdout
        # Escalated to LKPP (R15): SPSE's page never failed, so a timeline and the bundle without a
        # Berita Acara, in one archive mailed to LKPP's contact through the relay.
        t1 = time.time()
        esc = fab("escalate", iid, "spse")
        assert esc.returncode == 0, esc.stdout[-3000:] + esc.stderr
        assert "sent to lkpp@lab.lpse" in esc.stdout and "tanpa Berita Acara Gangguan" in esc.stdout
        sent = oncall.wait_for(lambda: oncall.mails(lab.ONCALL_DIR, t1), lambda m: "Eskalasi gangguan" in m.subject, 60)
        assert sent is not None and sent.recipients == ("lkpp@lab.lpse",)
        assert "Unggah dokumen penawaran gagal (lab)" in sent.subject and f"eskalasi-{iid}.tar.gz" in sent.body
    finally:
        done = fab("incident-update", iid, "--state", "resolved", "--message-id", "Sudah normal kembali",
                   "--message-en", "Back to normal")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    page = front_door(address["monitor"], "/?lang=en")[1].decode()
    assert f'id="live-{iid}"' not in page and "Resolved</b>: Back to normal" in page
    again = fab("incident-update", iid, "--state", "monitoring", "--message-id", "lagi")
    assert again.returncode == 1 and "open a new one" in again.stderr


def test_the_ops_page_records_a_visit_with_the_login_and_shows_the_server_room(
    monitor: testinfra.host.Host, address: dict[str, str], provisioned: object
) -> None:
    """The /ops form through nginx: refused without the login, recorded with it (the login kept as
    who recorded it), shown as inside until the leave button; the page shows the UPS and says that
    the lab's containers have no temperature sensors."""

    def post(form: dict[str, str], login: tuple[str, str] | None) -> str:
        argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(LAB_CA),
                "--resolve", f"monitor:443:{address['monitor']}", "-H", "Origin: https://monitor"]  # fmt: skip
        argv += [a for k, v in form.items() for a in ("--data-urlencode", f"{k}={v}")]
        argv += ["-u", ":".join(login)] if login else []
        return subprocess.run([*argv, "https://monitor/ops"], capture_output=True, text=True, timeout=30).stdout

    entry = {"action": "enter", "visitor": "Sari Dewi", "organisation": "Diskominfo", "purpose": "cek suhu",
             "allowed_by": "Kepala LPSE"}  # fmt: skip
    assert post(entry, None) == "401"
    assert post(entry, ops_login()) == "303"
    (visit,) = [v for v in fab("visits", "--open").stdout.splitlines() if "Sari Dewi" in v]
    visit_id = visit.split()[0]
    record = json.loads(monitor.file(f"/var/lib/lpse-ops/visits/{visit_id}.json").content_string)
    assert record["recorded_by"] == "ops" and record["purpose"] == "cek suhu"
    status, page = front_door(address["monitor"], "/ops", login=ops_login())
    text = page.decode()
    assert status == 200 and "Sari Dewi" in text and "<table id=ups>" in text and "ups (spse)" in text
    assert "Tidak ada sensor suhu" in text
    assert post({"action": "leave", "visit": visit_id}, ops_login()) == "303"
    assert json.loads(monitor.file(f"/var/lib/lpse-ops/visits/{visit_id}.json").content_string)["left"]
