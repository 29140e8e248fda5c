"""LKPP's national store on the lab's lkpp host (playbooks/national.yml), fed by the lab site's
monitoring server (roles/lkpp_telemetry): the site's contract arrives, a site cannot write as
another, a reader cannot write, every door asks for a login, the store's own endpoints are
locked, a silent site pages LKPP's on-call by mail, and the store's backup lands in its bucket.

Sites and readers are played from this machine (the lab gateway) over HTTPS, as they would from
anywhere; the remote-write requests the tests send are built by lpse_lab.remote_write, the site's
own come from its vmagent.

Marked `lab_national`: scripts/test runs it on the lab that has the spare time.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import re
import ssl
import subprocess
import time
import urllib.parse
import uuid
from base64 import b64encode
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import LAB_CA, REPO, Provisioned, monitoring_api, offroom_s3, overlay_inventory, run_playbook
from lpse_lab import lab, oncall, remote_write
from lpse_lab.cli import lab_secrets

pytestmark = [pytest.mark.lab, pytest.mark.lab_national]

SITE = "lab"  # prometheus_site of the lab's monitoring server
OTHER_SITE = "kab-contoh"
READER = "analis"
BUCKET = "lkpp-national"


@pytest.fixture(scope="module")
def national(provisioned: Provisioned, lab_config: lab.LabConfig) -> str:
    """The national stack on the lkpp host (national.yml, started by `provisioned` beside the
    tests before these), and its backup bucket (LKPP's storage team makes it at a real site).
    Returns the lkpp host's address."""
    assert provisioned.national is not None, "the provisioned fixture did not start national.yml"
    run = provisioned.national()
    assert run.rc == 0, run.failures
    s3 = offroom_s3(lab_config, BUCKET)
    if BUCKET not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
        s3.create_bucket(Bucket=BUCKET)
    return lab_config.lkpp.address


def test_a_second_national_run_changes_nothing(national: str) -> None:
    again = run_playbook("national.yml")
    assert again.rc == 0, again.failures
    changed = {h: r["changed"] for h, r in again.recap().items() if r["changed"]}
    assert not changed, f"national.yml is not idempotent: {changed}\n{again.changes}"


def request(
    address: str, method: str, path: str, login: tuple[str, str] | None = None, body: bytes = b"", **headers: str
) -> tuple[int, bytes]:
    """One HTTPS request to the national door (https://lkpp/ on the lab's lkpp host)."""
    # The lab CA's certificate for lkpp names its address too.
    conn = http.client.HTTPSConnection(address, 443, context=ssl.create_default_context(cafile=str(LAB_CA)), timeout=30)
    if login:
        headers["Authorization"] = "Basic " + b64encode(f"{login[0]}:{login[1]}".encode()).decode()
    conn.request(method, path, body=body or None, headers=headers)
    res = conn.getresponse()
    out = res.status, res.read()
    conn.close()
    return out


def query(address: str, expr: str, login: tuple[str, str], at: float | None = None) -> list[dict]:
    params = {"query": expr} | ({"time": f"{at:.3f}"} if at is not None else {})
    status, body = request(address, "GET", "/api/v1/query?" + urllib.parse.urlencode(params), login)
    assert status == 200, body[:500]
    return json.loads(body)["data"]["result"]


def write_request(series: list[tuple[dict[str, str], float, int]]) -> bytes:
    """A remote-write body with one sample per (labels, value, epoch ms)."""
    return remote_write.encode((labels, [(value, ts)]) for labels, value, ts in series)


def send(address: str, login: tuple[str, str] | None, series: list[tuple[dict[str, str], float, int]]) -> int:
    status, _ = request(
        address,
        "POST",
        "/api/v1/write",
        login,
        write_request(series),
        **{"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"},
    )
    return status


@pytest.fixture(scope="module")
def logins() -> dict[str, tuple[str, str]]:
    s = lab_secrets()
    return {
        "site": (SITE, s["vault_lkpp_telemetry_secret"]),
        "other": (OTHER_SITE, s["vault_national_other_site_secret"]),
        "reader": (READER, s["vault_national_reader_password"]),
    }


def test_the_sites_contract_reaches_lkpp_within_two_minutes(national: str, logins: dict[str, tuple[str, str]]) -> None:
    """The site's vmagent sends the contract; at LKPP its newest sample is at most 2 min old,
    seen five times over two minutes (the site's rules run every minute, vmagent reads them
    every minute, and the store shows a sample 30 s after it arrives)."""
    deadline = time.monotonic() + 300
    # The newest of its contract_info series (a site that changed release or configuration has
    # a series for each).
    expr = f'time() - max(tlast_over_time(lpse_national:contract_info{{lpse_site="{SITE}"}}[15m]))'
    lags: list[float] = []
    while len(lags) < 5:
        result = query(national, expr, logins["reader"])
        lag = float(result[0]["value"][1]) if result else float("inf")
        if lag <= 120:
            lags.append(lag)
            time.sleep(24)
        else:
            assert not lags, f"the contract was {lag:.0f} s old at LKPP after being fresh: {lags}"
            assert time.monotonic() < deadline, f"no contract sample of {SITE} younger than 2 min at LKPP (now {lag})"
            time.sleep(5)
    print(f"age of the site's newest contract sample at LKPP: {', '.join(f'{x:.0f}' for x in lags)} s")
    # What arrived is the contract, with the site's own label and its version.
    info = query(national, f'lpse_national:contract_info{{lpse_site="{SITE}"}}', logins["reader"])
    labels = {"__name__", "lpse_site", "contract_version", "lpse_ops_version", "config_fingerprint"}
    assert info and all(set(i["metric"]) == labels and i["metric"]["contract_version"] == "1" for i in info), info
    up = query(national, f'lpse_national:spse_up{{lpse_site="{SITE}"}}', logins["reader"])
    assert up and up[0]["value"][1] == "1", up


def test_a_site_writes_only_under_its_own_name(national: str, logins: dict[str, tuple[str, str]]) -> None:
    name = f"lpse_national:impersonation_probe_{uuid.uuid4().hex[:8]}"
    now = int(time.time() * 1000)
    assert send(national, logins["other"], [({"__name__": name, "lpse_site": SITE}, 42.0, now)]) == 204
    assert send(national, logins["other"], [({"__name__": name, "probe": "unlabelled"}, 7.0, now)]) == 204
    # The store shows a sample ~30 s after it arrives, each series in its own time.
    deadline = time.monotonic() + 90
    while len(result := query(national, f"{name}[5m]", logins["reader"])) < 2:
        assert time.monotonic() < deadline, f"both series of {name} never showed up: {result}"
        time.sleep(3)
    assert {r["metric"]["lpse_site"] for r in result} == {OTHER_SITE}, result
    assert len(result) == 2, result


def test_every_door_wants_the_right_login(national: str, logins: dict[str, tuple[str, str]]) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    sample = [({"__name__": "lpse_national:spse_up"}, 1.0, int(time.time() * 1000))]
    for login in (None, (SITE, wrong), ("nobody", wrong)):
        assert send(national, login, sample) == 401, login
        status, _ = request(national, "GET", "/api/v1/query?query=up", login)
        assert status == 401, login
    # A known login gets only what it is for.
    assert send(national, logins["reader"], sample) == 403
    status, _ = request(national, "GET", "/api/v1/query?query=up", logins["site"])
    assert status == 403
    for method, path in (
        ("POST", "/api/v1/import/prometheus"),
        ("GET", "/api/v1/export?match[]=up"),
        ("POST", "/api/v1/admin/tsdb/delete_series?match[]={lpse_site=%22lab%22}"),
        ("GET", "/snapshot/create"),
        ("GET", "/metrics"),
        ("GET", "/flags"),
        ("GET", "/-/reload"),
    ):
        status, body = request(national, method, path, logins["reader"], b"x 1\n" if method == "POST" else b"")
        assert status in (400, 401, 403), (path, status, body[:300])
    # The site's data is still all there (the delete above was refused).
    assert query(national, f'lpse_national:contract_info{{lpse_site="{SITE}"}}', logins["reader"])
    # Each request is logged with its login, and no password is.
    log = lab.ssh(national, "sudo cat /var/log/nginx/national.log /var/log/nginx/error.log", timeout=30).stdout
    assert f" - {READER} [" in log and f" - {SITE} [" in log
    journal = lab.ssh(national, "sudo journalctl -q -u lpse-national-vmauth -u victoria-metrics", timeout=30).stdout
    for secret in (wrong, logins["reader"][1], logins["site"][1]):
        assert secret not in log and secret not in journal


def test_the_store_and_its_router_are_closed_to_the_network_and_locked_on_the_host(
    national: str, lab_config: lab.LabConfig
) -> None:
    for port in (8428, 8427, 8880, 9093):
        assert not lab.port_open(national, port, timeout=2), f"port {port} answers from outside"
    # On the host itself, nothing administers the store without its key (VictoriaMetrics 1.79
    # answers a missing key with 400 or 401, always naming the key).
    for url in (
        "http://127.0.0.1:8428/api/v1/admin/tsdb/delete_series?match[]=up",
        "http://127.0.0.1:8428/snapshot/create",
        "http://127.0.0.1:8428/internal/force_merge",
        "http://127.0.0.1:8428/flags",
        "http://127.0.0.1:8428/metrics",
        "http://127.0.0.1:8427/metrics",
        "http://127.0.0.1:8427/-/reload",
        "http://127.0.0.1:8880/metrics",
    ):
        out = lab.ssh(national, f"curl -g -s -w '\\n%{{http_code}}' '{url}'", timeout=30).stdout
        body, _, status = out.rpartition("\n")
        assert status in ("400", "401") and "authKey" in body, (url, status, body[:300])
    # ...and the data is all still there.
    assert lab.ssh(
        national, "curl -g -s 'http://127.0.0.1:8428/api/v1/series?match[]=lpse_national:contract_info'"
    ).stdout.count('"lpse_site":"lab"')


def test_a_silent_site_pages_lkpps_on_call(national: str, logins: dict[str, tuple[str, str]]) -> None:
    """kab-contoh has a login but never sends its contract: after national_alerts_site_silent_for
    (2 min in the lab) LKPP's on-call gets mail naming it; the lab site, which sends, is not
    among the silent."""
    mail = oncall.wait_for(
        lambda: oncall.mails(lab.ONCALL_DIR),
        lambda m: "LpseSiteSilent" in m.subject and OTHER_SITE in m.subject + m.body,
        300,
    )
    assert mail is not None, "no LpseSiteSilent mail for kab-contoh reached LKPP's on-call"
    assert "piket@lkpp.lab" in mail.recipients
    # What fires now (vmalert writes its alerts into the store): the silent site, not the one
    # that sends (vmalert writes a firing alert's sample at every evaluation, 10 s in the lab: one
    # that resolved, the lab site's before it first sent, has none in the last 30 s).
    expr = 'last_over_time(ALERTS{alertname="LpseSiteSilent", alertstate="firing"}[30s])'
    deadline = time.monotonic() + 60
    while True:
        firing = query(national, expr, logins["reader"])
        if {a["metric"]["lpse_site"] for a in firing} == {OTHER_SITE}:
            break
        assert time.monotonic() < deadline, firing
        time.sleep(5)


def test_the_store_is_backed_up_to_its_bucket(national: str, lab_config: lab.LabConfig) -> None:
    res = lab.ssh(national, "sudo systemctl start lpse-national-backup.service", timeout=300)
    assert res.returncode == 0, res.stderr + lab.ssh(national, "sudo journalctl -q -u lpse-national-backup").stdout
    pages = offroom_s3(lab_config, BUCKET).get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    assert "national/latest/backup_complete.ignore" in keys, keys[:20]
    assert any(k.startswith("national/latest/data/") for k in keys), keys[:20]
    assert lab.ssh(national, "systemctl is-enabled lpse-national-backup.timer").stdout.strip() == "enabled"


def test_the_site_sends_with_its_password_off_the_command_line(
    national: str, monitor: Any, address: dict[str, str]
) -> None:
    assert monitor.service("lpse-vmagent").is_running
    password = lab_secrets()["vault_lkpp_telemetry_secret"]
    assert password not in monitor.check_output("ps -eo args")
    secret = monitor.file("/etc/lpse-vmagent/lkpp.password")
    assert (secret.user, secret.group, secret.mode) == ("root", "lpse-vmagent", 0o640)
    # vmagent's own page (its queue) is not open to the network.
    assert not lab.port_open(address["monitor"], 8429, timeout=2)


def chromium_dom(address: str, url: str, tmp: Any, script_ms: int = 0) -> str:
    """The page as headless Chromium (Debian's package) builds it; the certificate was checked by
    the requests above, the browser only renders. `script_ms`: time a page's scripts get (their
    requests answered) before the DOM is read."""
    wait = [f"--virtual-time-budget={script_ms}"] if script_ms else []
    res = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp / 'chromium-profile'}", "--ignore-certificate-errors",
         f"--host-resolver-rules=MAP lkpp {address}", *wait, "--dump-dom", url],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return res.stdout


def test_the_national_page_shows_every_site_and_a_sites_ninety_days(
    national: str, logins: dict[str, tuple[str, str]], tmp_path: Any
) -> None:
    """LKPP's readers see every expected site on https://lkpp/nasional/: the lab site, which
    sends, up; kab-contoh, whose last 90 days (one bad day among them) arrive here as a replay
    that ended an hour ago, silent now, with its bad day red on its own page. Filtered by
    province and in English in Chromium; a site's login and no login get nothing."""
    wib = dt.timezone(dt.timedelta(hours=7))
    today = dt.datetime.now(wib).replace(hour=0, minute=0, second=0, microsecond=0)
    bad = today - dt.timedelta(days=5)
    end = int(time.time()) - 3600
    replay: list[tuple[dict[str, str], float, int]] = []
    for ts in range(end - 90 * 86400, end, 3600):
        figure = 0.9 if bad.timestamp() + 12 * 3600 <= ts < bad.timestamp() + 36 * 3600 else 1.0
        info = {"__name__": "lpse_national:contract_info", "contract_version": "1", "lpse_ops_version": "0.0.0-lab",
                "config_fingerprint": "0000000000000000"}  # fmt: skip
        replay += [
            (info, 1.0, ts * 1000),
            ({"__name__": "lpse_national:spse_up"}, 1.0, ts * 1000),
            ({"__name__": "lpse_national:spse_availability_excluding_maintenance_1d:ratio"}, figure, ts * 1000),
        ]
    assert send(national, logins["other"], replay) == 204

    status, _ = request(national, "GET", "/nasional/")
    assert status == 401
    status, _ = request(national, "GET", "/nasional/", logins["site"])
    assert status == 403
    deadline = time.monotonic() + 120  # the site's newest contract is at most 2 min old here
    while True:
        status, body = request(national, "GET", "/nasional/", logins["reader"])
        assert status == 200, body[:300]
        rows = re.findall(r'<tr data-site="([^"]+)" data-state="([^"]+)"', body.decode())
        if (SITE, "up") in rows:
            break
        assert time.monotonic() < deadline, rows
        time.sleep(5)

    user, password = logins["reader"]
    base = f"https://{user}:{password}@lkpp/nasional/"
    dom = chromium_dom(national, base + "?provinsi=Jawa+Tengah", tmp_path)
    assert re.findall(r'<tr data-site="([^"]+)" data-state="([^"]+)"', dom) == [(OTHER_SITE, "silent")], dom[:3000]
    assert "LPSE Kabupaten Contoh" in dom and "Terakhir mengirim" in dom
    dom = chromium_dom(national, base + "?lang=en", tmp_path)
    assert {s for s, _ in re.findall(r'<tr data-site="([^"]+)" data-state="([^"]+)"', dom)} == {SITE, OTHER_SITE}
    assert "Availability, 30 days" in dom

    deadline = time.monotonic() + 90  # the store shows a sample ~30 s after it arrives
    while True:
        dom = chromium_dom(national, base + f"situs/{OTHER_SITE}", tmp_path)
        red = re.findall(r'<tr data-date="([^"]+)">\s*<td>[^<]*</td>\s*<td class="bad"', dom)
        if red or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert red == [bad.strftime("%Y-%m-%d")], dom[:3000]
    assert len(re.findall(r'<tr data-date="', dom)) == 90
    assert '<span id="below">1</span>' in dom


def test_analysts_get_victoriametrics_own_ui_through_the_door(
    national: str, logins: dict[str, tuple[str, str]], tmp_path: Any
) -> None:
    """vmui (upstream's build of the store's release) at https://lkpp/vmui/, for LKPP's readers
    only; in Chromium it queries the store through the readers' routes (/prometheus/api/v1/...) and
    tables the lab site's contract. The routes it uses read and do nothing else."""
    assert request(national, "GET", "/vmui/")[0] == 401
    assert request(national, "GET", "/vmui/", (READER, f"wrong-{uuid.uuid4().hex}"))[0] == 401
    assert request(national, "GET", "/vmui/", logins["site"])[0] == 403
    status, page = request(national, "GET", "/vmui/", logins["reader"])
    assert status == 200 and b"<title>VM UI</title>" in page, page[:300]
    script = re.search(rb'src="\./(static/js/main\.[0-9a-f]+\.js)"', page)
    assert script and request(national, "GET", "/vmui/" + script[1].decode(), logins["reader"])[0] == 200
    expr = "max by (lpse_site) (lpse_national:spse_up)"
    status, body = request(national, "GET", "/prometheus/api/v1/query?" + urllib.parse.urlencode({"query": expr}),
                           logins["reader"])  # fmt: skip
    assert status == 200 and {"lpse_site": SITE} in [r["metric"] for r in json.loads(body)["data"]["result"]]
    assert request(national, "GET", "/prometheus/api/v1/query?query=up", logins["site"])[0] == 403
    for method, path in (("POST", "/prometheus/api/v1/import/prometheus"), ("GET", "/prometheus/api/v1/export"),
                         ("POST", "/prometheus/api/v1/admin/tsdb/delete_series?match[]=up")):  # fmt: skip
        status, body = request(national, method, path, logins["reader"], b"x 1\n" if method == "POST" else b"")
        assert status in (400, 401, 403), (path, status, body[:300])

    # vmui asks at its end time with a step of a second or so: the store must still find a
    # site's newest sample until the next one is due (the contract comes once a minute, computed
    # once a minute: up to ~2 min apart), not "No data" for part of every minute.
    query = {"query": f'tlast_over_time(lpse_national:spse_up{{lpse_site="{SITE}"}}[10m])'}
    status, body = request(national, "GET", "/prometheus/api/v1/query?" + urllib.parse.urlencode(query),
                           logins["reader"])  # fmt: skip
    newest = float(json.loads(body)["data"]["result"][0]["value"][1])
    query = {"query": expr, "time": f"{newest + 110:.3f}", "step": "1s", "nocache": "1"}
    status, body = request(national, "GET", "/prometheus/api/v1/query?" + urllib.parse.urlencode(query),
                           logins["reader"])  # fmt: skip
    assert status == 200 and {"lpse_site": SITE} in [r["metric"] for r in json.loads(body)["data"]["result"]], body

    user, password = logins["reader"]
    url = f"https://{user}:{password}@lkpp/vmui/?" + urllib.parse.urlencode({"g0.expr": expr, "g0.tab": "table"})
    dom = chromium_dom(national, url, tmp_path, script_ms=20_000)
    # The table view: a row per series, the site's label and its value (SPSE up).
    assert re.search(rf"<td[^>]*>{SITE}</td><td[^>]*>1</td>", dom), dom[-3000:]


# How long LKPP, or the site's uplink, is down in the replay tests. The figure is 30 min;
# scripts/test keeps the whole suite within its time with a shorter one, and the 30 min runs are
# made by hand:
#   LPSE_TEST_LKPP_OUTAGE_MINUTES=30 .venv/bin/python -m pytest tests/lab/test_national.py
OUTAGE_S = 60 * float(os.environ.get("LPSE_TEST_LKPP_OUTAGE_MINUTES", "2"))


def _lkpp_down(lab_config: lab.LabConfig, down: bool) -> None:
    """LKPP's door (nginx on the lkpp host) stops, or starts again."""
    action = "stop" if down else "start"
    assert lab.ssh(lab_config.lkpp.address, f"sudo systemctl {action} nginx", timeout=60).returncode == 0


def _uplink_cut(lab_config: lab.LabConfig, down: bool) -> None:
    """The monitoring server's network link goes down, or comes back."""
    monitor = next(h for h in lab_config.hosts if h.name == "monitor")
    lab.run(["ip", "-n", monitor.netns, "link", "set", "host0", "down" if down else "up"])
    if not down:
        assert lab.wait_port(monitor.address, 22, 60), "the monitoring server did not come back"


@pytest.mark.parametrize("outage", [_lkpp_down, _uplink_cut], ids=["LKPP down", "uplink cut"])
def test_after_an_outage_every_sample_of_the_gap_arrives_once(
    national: str,
    lab_config: lab.LabConfig,
    address: dict[str, str],
    logins: dict[str, tuple[str, str]],
    outage: Callable[[lab.LabConfig, bool], None],
) -> None:
    """LKPP's door is down, or the site's uplink cut, for OUTAGE_S; the site's vmagent keeps the
    contract on disk and sends it afterwards. Counted over the gap: LKPP holds exactly the samples
    the site's Prometheus evaluated, none missing and none twice."""
    # The site's own Prometheus does not carry its lpse_site (an external label, added on the way out).
    series = "lpse_national:spse_up"
    outage(lab_config, True)
    start = time.time()
    try:
        time.sleep(OUTAGE_S)
    finally:
        outage(lab_config, False)
    end = time.time()
    window = f"{int(end - start)}s"
    at_site = monitoring_api(
        address["monitor"], "prometheus", "api/v1/query?" + urllib.parse.urlencode(
            {"query": f"count_over_time({series}[{window}])", "time": f"{end:.3f}"}
        ),
    )["data"]["result"]  # fmt: skip
    want = int(at_site[0]["value"][1])
    assert want >= OUTAGE_S / 60 - 1, at_site  # the contract is evaluated every minute
    deadline = time.monotonic() + 600
    while True:
        got_result = query(
            national, f'count_over_time({series}{{lpse_site="{SITE}"}}[{window}])', logins["reader"], at=end
        )
        got = int(got_result[0]["value"][1]) if got_result else 0
        if got >= want or time.monotonic() > deadline:
            break
        time.sleep(10)
    print(f"{OUTAGE_S:.0f} s outage: the site's Prometheus has {want} samples of {series}, LKPP {got}")
    assert got == want, f"{want} samples at the site over the outage, {got} at LKPP"


NATIONAL_OVERLAY = Path(__file__).parent / "national-overlay"


def test_the_national_example_is_a_working_lkpp(
    national: str, logins: dict[str, tuple[str, str]], tmp_path: Path
) -> None:
    """LKPP copies inventories/national-example: the lkpp host provisioned from it, with only the
    lab's address, names, certificates, stand-ins and vault values over it (tests/lab/
    national-overlay, and the example site overlay's way of reaching the lab), runs the national
    stack: the lab site's contract goes on arriving under the example's logins, readers read and
    cannot write, a missing login gets 401, the page is served and the store keeps the example's
    2 years. Last in this module: it leaves the lkpp host in the example's configuration."""
    s = lab_secrets()
    vault = {
        "vault_national_tls_key": (lab.STATE_DIR / "pki" / "lkpp.key").read_text(),
        "vault_national_site_hashes": {
            SITE: s["vault_lkpp_telemetry_secret_sha512"],
            OTHER_SITE: s["vault_national_other_site_secret_sha512"],
        },
        "vault_national_reader_hashes": {READER: s["vault_national_reader_password_bcrypt"]},
        "vault_national_internal_key": s["vault_national_internal_key"],
        "vault_national_admin_key": s["vault_national_admin_key"],
        "vault_national_backup_secret_key": s["vault_backup_offroom_secret_key"],
        "vault_alertmanager_smtp_password": s["vault_alertmanager_smtp_password"],
    }
    site_all = Path(__file__).parent / "example-overlay" / "group_vars" / "all" / "overlay.yml"
    overlay = overlay_inventory(tmp_path, NATIONAL_OVERLAY, vault, also={"group_vars/all/overlay.yml": site_all})
    run = run_playbook("national.yml", "-i", str(overlay), inventory=REPO / "inventories" / "national-example")
    assert run.rc == 0, run.failures
    applied = time.time()

    # The site's next contract arrives (the store shows a sample ~30 s after it comes in).
    expr = f'max(tlast_over_time(lpse_national:contract_info{{lpse_site="{SITE}"}}[5m]))'
    deadline, newest = time.monotonic() + 180, 0.0
    while newest <= applied:
        assert time.monotonic() < deadline, f"no contract of {SITE} arrived after the example was applied"
        time.sleep(10)
        newest = max((float(r["value"][1]) for r in query(national, expr, logins["reader"])), default=0.0)
    assert request(national, "GET", "/api/v1/query?query=up")[0] == 401
    assert send(national, logins["reader"], [({"__name__": "lab_reader_write"}, 1.0, int(time.time() * 1000))]) == 403
    status, page = request(national, "GET", "/nasional/", logins["reader"])
    assert status == 200, page[:300]
    assert (SITE, "up") in re.findall(r'<tr data-site="([^"]+)" data-state="([^"]+)"', page.decode()), page[:3000]
    # The analysts' ad-hoc query, through the door.
    status, page = request(national, "GET", "/nasional/kueri?q=lpse_national%3Aspse_up&rentang=1h", logins["reader"])
    assert status == 200 and b"lpse_site=&#34;lab&#34;" in page, page[-2000:]
    # VictoriaMetrics' own UI, and the route its queries take.
    assert request(national, "GET", "/vmui/", logins["reader"])[0] == 200
    status, _ = request(national, "GET", "/prometheus/api/v1/query?query=lpse_national%3Aspse_up", logins["reader"])
    assert status == 200
    store = lab.ssh(national, "pgrep -af victoria-metrics").stdout
    assert "-retentionPeriod=2y" in store, store
