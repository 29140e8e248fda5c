"""A real Prometheus on the monitor host scrapes every exporter; values read back via its API."""

from __future__ import annotations

import hashlib
import socket
import ssl
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
import testinfra
from conftest import LAB_CA, REPO, monitoring_api
from lpse_lab.cli import lab_secrets
from test_exporter import one, scrape_inside, spse_documents
from test_spse_host import https_get_bytes

pytestmark = pytest.mark.lab


def api(address: str, path: str, **params: str) -> dict:
    body = monitoring_api(address, "prometheus", f"api/v1/{path}?{urllib.parse.urlencode(params)}")
    assert body["status"] == "success", body
    return body["data"]


def instant(address: str, query: str, at: float | None = None) -> float:
    params = {"query": query} | ({"time": f"{at:.3f}"} if at else {})
    result = api(address, "query", **params)["result"]
    assert len(result) == 1, (query, result)
    return float(result[0]["value"][1])


def test_every_exporter_is_scraped(address: dict[str, str], provisioned: object) -> None:
    deadline = time.monotonic() + 30
    while True:
        targets = api(address["monitor"], "targets")["activeTargets"]
        health = {t["labels"]["instance"]: t["health"] for t in targets if t["labels"]["job"] == "lpse"}
        if (set(health) == set(address) and set(health.values()) == {"up"}) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert health == dict.fromkeys(address, "up")
    # The off-room host's exporter serves HTTPS with a login (the lab's inventory): scraped as such.
    urls = {t["labels"]["instance"]: t["scrapeUrl"] for t in targets if t["labels"]["job"] == "lpse"}
    assert urls["offroom"].startswith("https://") and urls["spse"].startswith("http://"), urls
    # Each is labelled with what it does, not with the lab's own group of the site's hosts.
    roles = {t["labels"]["instance"]: t["labels"]["lpse_role"] for t in targets if t["labels"]["job"] == "lpse"}
    assert roles == {"spse": "spse_servers", "monitor": "monitoring_servers", "offroom": "offroom_storage"}


def test_an_exporter_with_tls_and_a_login_answers_only_with_both(monitor: testinfra.host.Host) -> None:
    """What Prometheus gets from the off-room exporter, the same request without the login or
    without TLS does not."""
    password = lab_secrets()["vault_exporter_scrape_password"]
    url = "https://offroom:9120/metrics"
    assert "lpse_exporter_collector_success" in monitor.check_output(f"curl -sf -u prometheus:{password} {url}")
    assert monitor.check_output(f"curl -s -o /dev/null -w '%{{http_code}}' {url}") == "401"
    assert monitor.check_output(f"curl -s -o /dev/null -w '%{{http_code}}' -u prometheus:wrong {url}") == "401"
    assert monitor.run(f"curl -sf -u prometheus:{password} http://offroom:9120/metrics").rc != 0
    # Prometheus keeps the password in a file of its own, not in its configuration.
    assert password not in monitor.file("/etc/prometheus/prometheus.yml").content_string
    secret = monitor.file("/etc/prometheus/exporter-scrape.password")
    assert secret.mode == 0o640 and secret.group == "prometheus"


def test_spse_outage_reaches_prometheus(spse: testinfra.host.Host, address: dict[str, str]) -> None:
    q = 'lpse_spse_up{instance="spse"}'
    deadline = time.monotonic() + 20  # earlier tests may have just brought SPSE back
    while instant(address["monitor"], q) != 1.0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert instant(address["monitor"], q) == 1.0
    spse.check_output("systemctl stop spse")
    try:
        deadline = time.monotonic() + 10  # probe every 2 s, scrape every 2 s
        while instant(address["monitor"], q) != 0.0 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert instant(address["monitor"], q) == 0.0
    finally:
        spse.check_output("systemctl start spse")


def test_traffic_counter_and_rate_agree_with_bytes_sent(spse: testinfra.host.Host, address: dict[str, str]) -> None:
    docs = spse_documents(spse)
    counter = 'lpse_network_transmit_bytes_total{instance="spse",interface="host0"}'
    time.sleep(5)  # two scrapes since any earlier traffic
    # What the host sends anyway (its exporter's answers to the scrapes, the probes' pages), over
    # a quiet spell, is taken off what it sent over the transfer's spell: a slow transfer on a
    # busy machine spans more scrapes (165 KB more than the documents, once, against 2 % of 5.7 MB).
    tq = time.time()
    time.sleep(10)
    t0 = time.time()
    received = sum(len(https_get_bytes(address["spse"], f"/eproc4/dokumen/{i}")) for i, _ in docs)
    time.sleep(5)  # two scrapes after the transfer
    t1 = time.time()
    assert received == sum(n for _, n in docs)
    c_q, c_0, c_1 = (instant(address["monitor"], counter, t) for t in (tq, t0, t1))
    background = (c_0 - c_q) / (t0 - tq) * (t1 - t0)
    assert c_1 - c_0 - background == pytest.approx(received, rel=0.02)

    # A steady, sender-paced upload from this machine to the SPSE host: the rate Prometheus
    # computes in the middle of it matches the pace (receive side, bytes on the wire).
    total, seconds = 24 * 1024 * 1024, 16.0
    rx = 'lpse_network_receive_bytes_total{instance="spse",interface="host0"}'
    before = wire_bytes("receive")
    start = paced_upload(address["spse"], total, seconds)
    received_on_wire = wire_bytes("receive") - before
    assert received_on_wire == pytest.approx(total, rel=0.02)
    computed = instant(address["monitor"], f"rate({rx}[8s])", start + 12)  # window [4 s, 12 s] of the upload
    assert computed == pytest.approx(total / seconds, rel=0.02)


def wire_bytes(direction: str = "transmit") -> float:
    return one(scrape_inside("lab-spse"), f"lpse_network_{direction}_bytes_total", interface="host0")


def paced_upload(address: str, total: int, seconds: float) -> float:
    """POST `total` bytes to https://spse/eproc4/ at a steady pace; returns the start time.

    nginx reads the whole body before it answers (SPSE's simulator then refuses the POST),
    so the bytes cross host0 at the pace this sender sets.
    """
    ctx = ssl.create_default_context(cafile=str(LAB_CA))
    raw = socket.create_connection((address, 443), timeout=30)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)  # small buffer: no burst
    chunk = b"\0" * (64 * 1024)
    with ctx.wrap_socket(raw, server_hostname="spse") as tls:
        tls.sendall(
            f"POST /eproc4/lpse-upload-test HTTP/1.1\r\nHost: spse\r\nContent-Length: {total}\r\n"
            "Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n".encode()
        )
        start, sent, pace = time.time(), 0, total / seconds
        while sent < total:
            n = min(len(chunk), total - sent)
            tls.sendall(chunk[:n])
            sent += n
            delay = start + sent / pace - time.time()
            if delay > 0:
                time.sleep(delay)
        tls.recv(1024)  # the answer (nginx has the whole body by then)
    return start


def alerts(address: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for a in api(address, "alerts")["alerts"]:
        out.setdefault(a["labels"]["alertname"], []).append(a)
    return out


def test_alert_rules_are_loaded_and_the_watchdog_fires(address: dict[str, str], provisioned: object) -> None:
    deadline = time.monotonic() + 15  # rules just reloaded are "unknown" until first evaluated
    while True:
        rules = [r for g in api(address["monitor"], "rules")["groups"] for r in g["rules"]]
        bad = [(r["name"], r["health"], r.get("lastError")) for r in rules if r["health"] != "ok"]
        if not bad or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len([r for r in rules if r["type"] == "alerting"]) >= 15
    assert not bad
    deadline = time.monotonic() + 15
    while "Watchdog" not in alerts(address["monitor"]) and time.monotonic() < deadline:
        time.sleep(1)
    assert alerts(address["monitor"])["Watchdog"][0]["state"] == "firing"


def test_spse_down_alert_fires_and_clears(spse: testinfra.host.Host, address: dict[str, str]) -> None:
    spse.check_output("systemctl stop spse")
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60:
            firing = [a for a in alerts(address["monitor"]).get("SpseDown", []) if a["state"] == "firing"]
            if firing:
                break
            time.sleep(1)
        assert firing and firing[0]["labels"]["instance"] == "spse"
        assert firing[0]["annotations"]["summary"] == "SPSE tidak dapat diakses di spse"
    finally:
        spse.check_output("systemctl start spse")
    deadline = time.monotonic() + 60
    while alerts(address["monitor"]).get("SpseDown") and time.monotonic() < deadline:
        time.sleep(1)
    assert not alerts(address["monitor"]).get("SpseDown")


def recorded_expression(address: str, record: str) -> str:
    """The PromQL a recording rule of the site's Prometheus evaluates, as Prometheus loaded it."""
    rules = [r for g in api(address, "rules")["groups"] for r in g["rules"] if r.get("name") == record]
    assert len(rules) == 1, (record, rules)
    return str(rules[0]["query"])


def wait_for(address: str, query: str, want: float, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        got = api(address, "query", query=query)["result"]
        if got and float(got[0]["value"][1]) == want:
            return
        assert time.monotonic() < deadline, f"{query} is not {want} after {seconds:.0f} s: {got}"
        time.sleep(2)


def test_the_national_contract_is_computed_at_the_site(monitor: testinfra.host.Host, address: dict[str, str]) -> None:
    """The contract's series are recorded (docs/national-telemetry.md), and its info names the
    lpse-ops release of this checkout and the fingerprint of the alert rules the site runs."""
    wait_for(address["monitor"], "lpse_national:spse_up", 1, 90)
    info = api(address["monitor"], "query", query="lpse_national:contract_info")["result"]
    assert len(info) == 1, info
    labels = info[0]["metric"]
    version = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty", "--abbrev=12"], capture_output=True, text=True
    ).stdout.strip()
    rules = monitor.file("/etc/prometheus/rules/lpse-alerts.yml").content
    assert labels["contract_version"] == "1"
    assert labels["lpse_ops_version"] == version
    assert labels["config_fingerprint"] == hashlib.sha256(rules).hexdigest()[:16]
    for series in ("disk_free:ratio", "memory_available:ratio", "critical_alerts_firing", "maintenance_active"):
        assert api(address["monitor"], "query", query=f"lpse_national:{series}")["result"], series
