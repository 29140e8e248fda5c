"""The SPSE host as an operator checks it: firewall, database, HTTPS, maintenance, users."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import testinfra
from conftest import LAB_CA

pytestmark = pytest.mark.lab

CONNECT = 'python3 -c "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)" {} {}'


def https_open(address: str, path: str) -> tuple[int, bytes, dict[str, str]]:
    """GET https://spse<path> checked against the lab CA, connecting to the lab address."""
    ctx = ssl.create_default_context(cafile=str(LAB_CA))
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx))
    # Resolve "spse" to the lab address without touching /etc/hosts on this machine.
    orig = socket.getaddrinfo
    socket.getaddrinfo = lambda host, *a, **k: orig(address if host == "spse" else host, *a, **k)  # type: ignore[assignment]
    try:
        with opener.open(urllib.request.Request(f"https://spse{path}"), timeout=30) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)
    finally:
        socket.getaddrinfo = orig  # type: ignore[assignment]


def https_get(address: str, path: str = "/eproc4/") -> tuple[int, str, dict[str, str]]:
    status, body, headers = https_open(address, path)
    return status, body.decode(), headers


def https_get_bytes(address: str, path: str) -> bytes:
    status, body, _ = https_open(address, path)
    assert status == 200, status
    return body


def test_spse_page_served_over_https_with_lab_chain(address: dict[str, str], provisioned: object) -> None:
    status, body, headers = https_get(address["spse"])
    assert status == 200
    assert "SPSE v4" in body and "Beranda SPSE" in body
    assert "max-age=" in headers["Strict-Transport-Security"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "SAMEORIGIN"


def test_untrusted_ca_is_rejected(address: dict[str, str], provisioned: object, tmp_path: Path) -> None:
    """The certificate SPSE serves chains to the lab CA and to nothing else: a client trusting
    another CA (made here, with the same name) refuses it; one trusting the lab CA accepts it."""
    trusted = ssl.create_default_context(cafile=str(LAB_CA))
    with trusted.wrap_socket(socket.create_connection((address["spse"], 443), 10), server_hostname="spse") as s:
        assert s.version() in ("TLSv1.2", "TLSv1.3")
    other = tmp_path / "other-ca.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(tmp_path / "other-ca.key"), "-out", str(other), "-days", "1",
         "-subj", "/CN=lpse-ops lab CA (testing only)"],
        check=True, capture_output=True,
    )  # fmt: skip
    ctx = ssl.create_default_context(cafile=str(other))
    with pytest.raises(ssl.SSLCertVerificationError):
        ctx.wrap_socket(socket.create_connection((address["spse"], 443), 10), server_hostname="spse")


def test_http_redirects_to_https(address: dict[str, str], provisioned: object) -> None:
    with socket.create_connection((address["spse"], 80), 10) as s:
        s.sendall(b"GET /eproc4/ HTTP/1.1\r\nHost: spse\r\nConnection: close\r\n\r\n")
        head = s.recv(4096).decode()
    assert head.startswith("HTTP/1.1 301")
    assert "Location: https://spse/eproc4/" in head


def test_firewall_drops_unlisted_port(
    spse: testinfra.host.Host, monitor: testinfra.host.Host, address: dict[str, str], listener: int
) -> None:
    assert spse.run(CONNECT.format("127.0.0.1", listener)).rc == 0, "listener is not up"
    assert monitor.run(CONNECT.format(address["spse"], listener)).rc != 0
    assert monitor.run(CONNECT.format(address["spse"], 443)).rc == 0


def test_postgresql_is_local_only(
    spse: testinfra.host.Host, monitor: testinfra.host.Host, address: dict[str, str]
) -> None:
    assert spse.socket("tcp://127.0.0.1:5432").is_listening
    assert not spse.socket(f"tcp://{address['spse']}:5432").is_listening
    assert not spse.socket("tcp://0.0.0.0:5432").is_listening
    assert monitor.run(CONNECT.format(address["spse"], 5432)).rc != 0


def test_spse_database_exists_and_app_can_use_it(spse: testinfra.host.Host) -> None:
    out = spse.check_output(
        "sudo -u postgres psql -Atc \"SELECT count(*) FROM pg_tables WHERE tablename='lelang'\" spse"
    )
    assert out == "1"


def test_postgresql_is_tuned_from_the_memory_figure(spse: testinfra.host.Host) -> None:
    # The lab sets postgresql_memory_mb: 2048 -> a quarter for shared buffers, 3/4 as cache.
    assert spse.check_output("sudo -u postgres psql -Atc 'SHOW shared_buffers'") == "512MB"
    assert spse.check_output("sudo -u postgres psql -Atc 'SHOW effective_cache_size'") == "1536MB"
    assert spse.check_output("sudo -u postgres psql -Atc 'SHOW password_encryption'") == "scram-sha-256"


def test_java_runtime_is_installed(spse: testinfra.host.Host) -> None:
    assert spse.package("openjdk-17-jre-headless").is_installed
    assert spse.run("java -version").rc == 0


def test_services_run_as_their_own_users(spse: testinfra.host.Host) -> None:
    assert spse.service("spse").is_running and spse.service("spse").is_enabled
    assert {p.user for p in spse.process.filter(comm="python3") if "spse-simulator" in p.args} == {"spse"}
    assert {p.user for p in spse.process.filter(comm="postgres")} == {"postgres"}
    workers = spse.process.filter(comm="nginx")
    assert {p.user for p in workers if "worker" in p.args} == {"www-data"}
    assert spse.socket("tcp://127.0.0.1:9000").is_listening
    assert not spse.socket("tcp://0.0.0.0:9000").is_listening


def test_spse_files_have_safe_owners(spse: testinfra.host.Host) -> None:
    docs = spse.file("/var/lib/spse/documents")
    assert docs.is_directory and docs.user == "spse" and docs.mode == 0o750
    conf = spse.file("/etc/spse/application.conf")
    assert conf.user == "root" and conf.group == "spse" and conf.mode == 0o640
    release = spse.file("/opt/spse/current")
    assert release.is_symlink and spse.file(release.linked_to).user == "root"
    assert spse.file("/etc/nginx/tls/spse.key").mode == 0o600


def test_ssh_and_journald_hardening(spse: testinfra.host.Host) -> None:
    sshd = spse.file("/etc/ssh/sshd_config")
    assert sshd.contains("^PasswordAuthentication no") and sshd.contains("^PermitRootLogin no")
    assert spse.file("/etc/systemd/journald.conf.d/lpse.conf").contains("SystemMaxUse=")
    assert spse.package("unattended-upgrades").is_installed
    assert spse.file("/etc/apt/apt.conf.d/20auto-upgrades").contains('Unattended-Upgrade "1"')
    assert spse.service("nftables").is_enabled


def test_simulator_generates_realistic_data(spse: testinfra.host.Host) -> None:
    seed = time.time_ns() % 2**31
    gen = spse.run(
        "sudo -u spse SPSE_CONFIG=/etc/spse/application.conf python3 /opt/spse/current/spse-simulator.pyz "
        f"generate --tenders 3 --bids-per-tender 4 --documents-size 30M --seed {seed}"
    )
    assert gen.rc == 0, gen.stderr
    m = re.search(r"added (\d+) tenders, (\d+) bids, ([\d.]+) MiB", gen.stdout)
    assert m and int(m[1]) >= 1 and int(m[2]) >= 1, gen.stdout
    rows = spse.check_output(
        "sudo -u postgres psql -AtF' ' -c "
        f'"SELECT dokumen_path, dokumen_bytes, dokumen_sha256 FROM penawaran ORDER BY id DESC LIMIT {m[2]}" spse'
    )
    total = 0
    for line in rows.splitlines():
        path, size, sha = line.split()
        f = spse.file(f"/var/lib/spse/documents/{path}")
        assert f.user == "spse" and f.size == int(size) > 0 and f.sha256sum == sha
        assert path.endswith((".pdf", ".zip"))
        total += int(size)
    assert total <= 30 * 1024**2
    assert total / 1024**2 == pytest.approx(float(m[3]), abs=0.05)


def test_unattended_upgrades_keep_out_of_a_blackout(spse: testinfra.host.Host) -> None:
    """A tender-closing blackout around now: the daily upgrade is skipped before it starts (no
    package, so no restart of PostgreSQL or nginx); outside it the window check lets it run."""
    assert spse.run("/usr/local/sbin/lpse-upgrade-window").rc == 0  # the lab has no blackout now
    blackouts = "/etc/lpse-ops/upgrade-blackouts.json"
    saved = spse.file(blackouts).content_string
    log = "/var/log/unattended-upgrades/unattended-upgrades.log"
    before = spse.run(f"stat -c %Y {log} 2>/dev/null || echo none").stdout.strip()
    pg = spse.check_output("systemctl show -p MainPID --value postgresql@15-main")
    spse.run(f"cp {blackouts} {blackouts}.test-saved")
    try:
        now = dt.datetime.now(dt.UTC)
        window = {
            "margin_minutes": 120,
            "blackouts": [{"start": (now - dt.timedelta(minutes=10)).isoformat(),
                           "end": (now + dt.timedelta(hours=1)).isoformat(), "reason": "Penutupan penawaran (test)"}],
        }  # fmt: skip
        spse.check_output(f"printf '%s' '{json.dumps(window)}' > {blackouts}")
        check = spse.run("/usr/local/sbin/lpse-upgrade-window")
        assert check.rc == 1 and "Penutupan penawaran (test)" in check.stdout, check.stdout + check.stderr
        since = spse.check_output("date '+%Y-%m-%d %H:%M:%S'")
        spse.run("systemctl start apt-daily-upgrade.service")
        journal = spse.check_output(f"journalctl -u apt-daily-upgrade.service --since '{since}' --no-pager")
        assert "lpse-upgrade-window" in journal and "Penutupan penawaran (test)" in journal, journal
        assert spse.run(f"stat -c %Y {log} 2>/dev/null || echo none").stdout.strip() == before
        assert spse.check_output("systemctl show -p MainPID --value postgresql@15-main") == pg
    finally:
        spse.run(f"mv {blackouts}.test-saved {blackouts}")
    assert spse.file(blackouts).content_string == saved
    timer = spse.check_output("systemctl cat apt-daily-upgrade.timer")
    assert "OnCalendar=*-*-* 03:00" in timer


def test_the_hosts_mail_reaches_the_sites_relay(spse: testinfra.host.Host) -> None:
    """Upgrade reports (and any mail of the host's own) go through the relay the inventory names."""
    from lpse_lab import lab, oncall

    subject = f"lpse-ops relay test {time.time_ns()}"
    since = time.time() - 1
    spse.check_output(f"printf 'Subject: {subject}\\n\\nfrom the SPSE host\\n' | /usr/sbin/sendmail ops@lab.lpse")
    found = oncall.wait_for(lambda: oncall.mails(lab.ONCALL_DIR, since), lambda m: m.subject == subject, 30)
    assert found is not None and found.sender == "spse@lab.lpse" and found.recipients == ("ops@lab.lpse",)
    assert spse.file("/etc/msmtprc").mode == 0o600


def test_pending_reboot_and_updates_are_metrics(spse: testinfra.host.Host) -> None:
    read = "systemctl start lpse-os-updates-textfile.service; cat /var/lib/lpse-exporter/textfile/os_updates.prom"
    spse.check_output("touch /run/reboot-required")
    try:
        prom = spse.check_output(read)
        assert "lpse_os_reboot_required 1.0" in prom and "lpse_os_updates_check_success 1.0" in prom, prom
        assert re.search(r'^lpse_os_upgrades_pending\{kind="security"\} \d', prom, re.M), prom
    finally:
        spse.run("rm -f /run/reboot-required")
    assert "lpse_os_reboot_required 0.0" in spse.check_output(read)
