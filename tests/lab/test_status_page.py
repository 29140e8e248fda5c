"""The status board on the lab's monitoring host, as bidders and the operations team see it:
over HTTPS (the lab CA), in headless Chromium (Debian's package), with screenshots checked for
the banner's colour, and against what the lab's SPSE is really doing."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import testinfra
from conftest import front_door
from lpse_lab.cli import lab_secrets
from PIL import Image

pytestmark = pytest.mark.lab

GREEN, RED = (0x2B, 0x8A, 0x3E), (0xC9, 0x2A, 0x2A)
GREY_BAR, TIP = (0xCE, 0xD4, 0xDA), (0x34, 0x3A, 0x40)  # a day without data; a bar's tip


def get(address: str, path: str, auth: tuple[str, str] | None = None) -> tuple[int, str]:
    """HTTPS GET to the monitor by name, verified against the lab CA (conftest.front_door)."""
    code, body = front_door(address, path, login=auth)
    return code, body.decode()


def chromium(url: str, out: Path, address: str) -> Image.Image:
    """A screenshot of `url` in headless Chromium (certificate checked by curl above; the browser
    only renders)."""
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={out.parent / 'chromium-profile'}", "--ignore-certificate-errors",
         f"--host-resolver-rules=MAP monitor {address}", "--window-size=900,700", "--hide-scrollbars",
         f"--screenshot={out}", url],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return Image.open(out).convert("RGB")


def share_of(img: Image.Image, colour: tuple[int, int, int], box: tuple[int, int, int, int]) -> float:
    """Share of the pixels in `box` that have `colour` (within a little for antialiasing)."""
    raw = img.crop(box).tobytes()
    pixels = [tuple(raw[i : i + 3]) for i in range(0, len(raw), 3)]
    near = sum(1 for p in pixels if all(abs(a - b) <= 6 for a, b in zip(p, colour, strict=True)))
    return near / len(pixels)


def wait_state(address: str, state: str, timeout: float = 60) -> str:
    deadline, body = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        code, body = get(address, "/")
        if code == 200 and f'data-state="{state}"' in body:
            return body
        time.sleep(2)
    raise AssertionError(f"the status page did not say {state} within {timeout} s: {body[:500]}")


def test_public_page_over_https_shows_spse_up_with_uptime(address: dict[str, str], provisioned: object) -> None:
    body = wait_state(address["monitor"], "up")
    assert "SPSE berjalan normal" in body and "LPSE Lab" in body
    assert 'id="uptime"' in body and "terakhir 24 jam" in body and "%</td>" in body
    code, en = get(address["monitor"], "/?lang=en")
    assert code == 200 and "SPSE is working normally" in en and "last 24 hours" in en
    # Only the two pages exist; the operations view wants the login.
    assert get(address["monitor"], "/metrics")[0] == 404
    assert get(address["monitor"], "/ops")[0] == 401
    assert get(address["monitor"], "/ops", ("ops", "wrong password"))[0] == 401


def test_ops_view_after_login_has_the_graphs(address: dict[str, str], provisioned: object) -> None:
    code, body = get(address["monitor"], "/ops?hours=1", ("ops", lab_secrets()["vault_status_ops_password"]))
    assert code == 200, body[:300]
    assert body.count("<svg") == 6
    for title in ("Disk terpakai", "RAM tersedia", "Bandwidth keluar", "Bandwidth masuk", "SPSE jalan"):
        assert title in body
    assert "<path d=" in body and "spse /var/lib/spse/documents" in body and "monitor" in body


def test_the_page_in_chromium_turns_red_when_spse_goes_down(
    spse: testinfra.host.Host, address: dict[str, str], provisioned: object, tmp_path: Path
) -> None:
    top = (0, 0, 900, 300)  # the top of the page, where the state banner is (about a fifth of it)
    wait_state(address["monitor"], "up")
    up = chromium("https://monitor/", tmp_path / "up.png", address["monitor"])
    assert share_of(up, GREEN, top) > 0.1, "the banner is not green while SPSE is up"
    assert share_of(up, RED, top) < 0.01
    spse.run("systemctl stop spse")
    try:
        wait_state(address["monitor"], "down")
        down = chromium("https://monitor/", tmp_path / "down.png", address["monitor"])
        assert share_of(down, RED, top) > 0.1, "the banner is not red while SPSE is down"
        assert share_of(down, GREEN, top) < 0.01
    finally:
        spse.run("systemctl start spse")
    wait_state(address["monitor"], "up", timeout=90)
    # The operations view in the browser too: the login travels in the URL, graphs are drawn.
    password = lab_secrets()["vault_status_ops_password"]
    ops = chromium(f"https://ops:{password}@monitor/ops", tmp_path / "ops.png", address["monitor"])
    colours = ops.getcolors(maxcolors=1 << 16) or []
    assert any(c[1] == (0x1B, 0x6A, 0xC9) for c in colours), "no graph line drawn in the operations view"


def test_ninety_days_of_bars_in_chromium_each_says_its_minutes_when_tapped(
    address: dict[str, str], provisioned: object, tmp_path: Path
) -> None:
    """A bar a day, grey before the lab's first probe, coloured since; a tap on one (a link to
    itself, no JavaScript) shows its day, availability and minutes down."""
    body = wait_state(address["monitor"], "up")
    days = re.findall(r'<li class="day-(\w+)" id="d-([\d-]+)"', body)
    assert len(days) == 90 and days[-1][0] != "none" and days[0][0] == "none", days[-3:]
    today = days[-1][1]
    tip = re.search(rf'id="d-{today}".*?<span class="tip">([^<]*)</span>', body)
    assert tip and re.fullmatch(r"\d\d-\d\d-\d{4}: \d+\.\d\d%, \d+ menit terganggu.*", tip[1]), tip
    plain = chromium("https://monitor/", tmp_path / "days.png", address["monitor"])
    assert share_of(plain, GREY_BAR, (0, 0, 900, 700)) > 0.002, "no grey bars for the days before the lab"
    assert share_of(plain, TIP, (0, 0, 900, 700)) < 0.0005, "a tip shows without being asked"
    tapped = chromium(f"https://monitor/#d-{today}", tmp_path / "tapped.png", address["monitor"])
    assert share_of(tapped, TIP, (0, 0, 900, 700)) > 0.002, "the tapped day's tip is not shown"


def test_a_months_open_data_is_served_signed_and_recomputable(
    monitor: testinfra.host.Host, address: dict[str, str], provisioned: object, tmp_path: Path
) -> None:
    """The board's own month files (written for each completed month; here the running month, on
    request), fetched through nginx as anyone would, checked with sha256sum and openssl."""
    month = time.strftime("%Y-%m", time.gmtime(time.time() + 7 * 3600))
    made = monitor.run(f"sudo -u lpse-status /opt/lpse-status/venv/bin/lpse-status open-data --month {month}")
    assert made.rc == 0, made.stderr
    assert monitor.file("/etc/lpse-status/open-data.key").mode == 0o640
    assert monitor.file("/etc/lpse-status/open-data.key").group == "lpse-status"
    name = f"ketersediaan-{month}"
    for file in (f"{name}.csv", f"{name}.json", f"{name}.sha256", f"{name}.sha256.sig", "kunci-publik.pem"):
        code, body = front_door(address["monitor"], f"/data/{file}")
        assert code == 200, (file, code)
        (tmp_path / file).write_bytes(body)
    subprocess.run(["sha256sum", "-c", f"{name}.sha256"], cwd=tmp_path, check=True, capture_output=True)
    verify = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "kunci-publik.pem", "-rawin",
                             "-in", f"{name}.sha256", "-sigfile", f"{name}.sha256.sig"],
                            cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert "Signature Verified Successfully" in verify.stdout, verify.stdout + verify.stderr
    meta = json.loads((tmp_path / f"{name}.json").read_text())
    rows = (tmp_path / f"{name}.csv").read_text().splitlines()[1:]
    begin = meta["figures"]["measured_from"]
    up = sum(1 for r in rows if r.endswith(",1") and begin < float(r.split(",")[1]) <= meta["end_epoch_seconds"])
    steps = (meta["end_epoch_seconds"] - begin) / meta["step_seconds"]
    assert meta["figures"]["availability"] == min(1.0, up / steps) and meta["step_seconds"] == 2
    assert front_door(address["monitor"], "/data/config.toml")[0] == 404


def test_status_board_runs_hardened_and_listens_on_localhost_only(
    monitor: testinfra.host.Host, provisioned: object
) -> None:
    assert monitor.service("lpse-status").is_running
    assert monitor.socket("tcp://127.0.0.1:9180").is_listening
    assert not monitor.socket("tcp://0.0.0.0:9180").is_listening
    props = monitor.check_output("systemctl show lpse-status -p User -p ProtectSystem -p NoNewPrivileges")
    assert "User=lpse-status" in props and "ProtectSystem=strict" in props and "NoNewPrivileges=yes" in props
    conf = monitor.file("/etc/lpse-status/config.toml")
    assert conf.mode == 0o640 and conf.group == "lpse-status"
    htpasswd = monitor.file("/etc/nginx/lpse-status-ops.htpasswd").content_string
    assert lab_secrets()["vault_status_ops_password"] not in htpasswd and "ops:$2" in htpasswd
    with pytest.raises(urllib.error.URLError):  # nothing but nginx answers from outside
        urllib.request.urlopen("http://10.213.0.11:9180/", timeout=3)


def test_an_outage_becomes_an_incident_record_explained_on_the_public_page(
    spse: testinfra.host.Host, monitor: testinfra.host.Host, address: dict[str, str], provisioned: object,
    tmp_path: Path,
) -> None:  # fmt: skip
    """SPSE stopped → SpseDown → Alertmanager's webhook opens the record; SPSE back → the resolved
    notification closes it with the probe timeline; on-call explains and publishes it."""
    folder = "/var/lib/lpse-ops/incidents"
    before = set(monitor.run(f"ls {folder}").stdout.split())
    stopped = time.time()
    spse.run("systemctl stop spse")
    try:
        deadline, new = time.monotonic() + 90, set[str]()
        while time.monotonic() < deadline and not new:
            new = {f for f in set(monitor.run(f"ls {folder}").stdout.split()) - before if "SpseDown-spse" in f}
            time.sleep(2)
        assert new, "no incident record within 90 s of SPSE going down"
    finally:
        spse.run("systemctl start spse")
    started = time.time()
    (name,) = new
    deadline, record = time.monotonic() + 90, {}
    while time.monotonic() < deadline:
        record = json.loads(monitor.file(f"{folder}/{name}").content_string)
        if record["resolved"]:
            break
        time.sleep(2)
    assert record["resolved"], "the record was not closed by the resolved notification"
    # The timeline is in order and brackets what the test did.
    assert stopped - 5 <= record["first_failure"] <= record["alert_start"] <= record["notified"] <= record["resolved"]
    assert record["recovered"] is not None and started - 5 <= record["recovered"] <= record["resolved"]
    assert monitor.file(f"{folder}/{name}").user == "lpse-status"

    iid = name.removesuffix(".json")
    cli = "sudo -u lpse-status /opt/lpse-status/venv/bin/lpse-status incidents"
    refused = monitor.run(f"{cli} explain {iid} --cause-id 'Uji lab' --publish")
    assert refused.rc == 1 and "both languages" in refused.stderr
    done = monitor.run(
        f"{cli} explain {iid} --cause-id 'Layanan SPSE dihentikan untuk uji lab' "
        f"--cause-en 'SPSE stopped for a lab test' --action 'SPSE dijalankan kembali' --publish"
    )
    assert done.rc == 0, done.stderr
    page = get(address["monitor"], "/")[1]
    assert f'id="incident-{iid}"' in page and "Layanan SPSE dihentikan untuk uji lab" in page
    assert "SPSE stopped for a lab test" in get(address["monitor"], "/?lang=en")[1]
    exported = monitor.run(f"/opt/lpse-status/venv/bin/lpse-status incidents export {iid} --out /tmp/{iid}.html")
    assert exported.rc == 0, exported.stderr
    doc = monitor.file(f"/tmp/{iid}.html").content_string
    assert "Kronologi / Timeline" in doc and "<svg" in doc and "SPSE dijalankan kembali" in doc


def test_the_berita_acara_of_an_outage_over_a_tender_closing(
    spse: testinfra.host.Host, monitor: testinfra.host.Host, address: dict[str, str], provisioned: object,
    tmp_path: Path,
) -> None:  # fmt: skip
    """SPSE stopped across a bid upload's closing that only SPSE's database knows of: the closing
    alert opens the incident, and its Berita Acara Gangguan names that tender, with the start and
    end of the outage to the second as the probe saw them; the PDF reads back."""
    wib = dt.timezone(dt.timedelta(hours=7))
    closes = dt.datetime.now(wib).replace(microsecond=0) + dt.timedelta(seconds=45)
    code = spse.check_output(
        "sudo -u spse SPSE_CONFIG=/etc/spse/application.conf python3 /opt/spse/current/spse-simulator.pyz tender "
        f"--name 'Uji berita acara' --opens {(closes - dt.timedelta(days=1)).isoformat()} --closes {closes.isoformat()}"
    ).strip()
    folder = "/var/lib/lpse-ops/incidents"
    before = set(monitor.run(f"ls {folder}").stdout.split())
    time.sleep(6)  # the exporter has read the new stage (a scrape every 2 s)
    stopped = time.time()
    spse.run("systemctl stop spse")
    try:
        deadline, new = time.monotonic() + 60, set[str]()
        while time.monotonic() < deadline and not new:
            new = {f for f in set(monitor.run(f"ls {folder}").stdout.split()) - before if "SpseDownAtClosing" in f}
            time.sleep(2)
        assert new, "the closing alert opened no incident within 60 s"
        time.sleep(max(0.0, closes.timestamp() + 15 - time.time()))  # the closing passes while SPSE is down
    finally:
        spse.run("systemctl start spse")
    started = time.time()
    (name,) = new
    iid = name.removesuffix(".json")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not json.loads(monitor.file(f"{folder}/{name}").content_string)["resolved"]:
        time.sleep(2)
    made = monitor.run(f"sudo -u lpse-status /opt/lpse-status/venv/bin/lpse-status berita-acara {iid} --out /tmp/ba")
    assert made.rc == 0, made.stderr
    cert = json.loads(monitor.file(f"/tmp/ba/berita-acara-{iid}.json").content_string)
    assert stopped <= cert["start"] <= stopped + 10 and started <= cert["end"] <= started + 15
    assert cert["start"] <= closes.timestamp() <= cert["end"]
    closed = [(s["tender"], s["name"]) for s in cert["stages"] if s["why"] == "ditutup selama gangguan"]
    assert closed == [(code, "Uji berita acara")], cert["stages"]
    for s in cert["stages"]:  # and any upload window listed was open across it
        assert s["opens"] < cert["end"] and s["closes"] > cert["start"]
    # The closing has passed; its schedule goes, so it blocks no later test's maintenance window.
    spse.run(f"sudo -u postgres psql -d spse -c \"DELETE FROM jadwal WHERE lelang_id IN "
             f"(SELECT id FROM lelang WHERE kode = '{code}')\"")  # fmt: skip
    (tmp_path / "ba.pdf").write_bytes(monitor.file(f"/tmp/ba/berita-acara-{iid}.pdf").content)
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "ba.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip
    assert "BERITA ACARA GANGGUAN" in text and code in text and cert["number"] in text
    first = dt.datetime.fromtimestamp(cert["start"], wib).strftime("%H:%M:%S WIB")
    assert first in text


def test_quarterly_report_on_the_monitoring_host(monitor: testinfra.host.Host, provisioned: object) -> None:
    """`lpse-status report` on the deployed board: HTML and PDF of the current quarter from the
    lab's own Prometheus, records and LKPP log (the figures are checked against known data in
    tests/unit/test_status_board.py)."""
    now = time.localtime()
    quarter = f"{now.tm_year}Q{(now.tm_mon - 1) // 3 + 1}"
    res = monitor.run(f"/opt/lpse-status/venv/bin/lpse-status report --quarter {quarter} --out /var/tmp/lpse-report")
    assert res.rc == 0, res.stderr
    name = f"/var/tmp/lpse-report/laporan-spse-{quarter}"
    html = monitor.file(f"{name}.html").content_string
    assert "Laporan Operasional SPSE Triwulan" in html and 'id="overall"' in html and "LPSE Lab" in html
    assert "/var/lib/spse/documents" in html, "the SPSE host's document disk is in the capacity table"
    assert monitor.run(f"head -c 4 {name}.pdf").stdout == "%PDF"
    bad = monitor.run("/opt/lpse-status/venv/bin/lpse-status report --quarter 2026-4 --out /var/tmp/lpse-report")
    assert bad.rc == 1 and "2026Q4" in bad.stderr
