"""A real Prometheus on the monitor host scrapes every exporter; values read back via its API."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request

import pytest
import testinfra
from test_exporter import one, scrape_inside, spse_documents
from test_spse_host import https_get_bytes

pytestmark = pytest.mark.lab


def api(address: str, path: str, **params: str) -> dict:
    url = f"http://{address}:9090/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
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


def test_spse_outage_reaches_prometheus(spse: testinfra.host.Host, address: dict[str, str]) -> None:
    q = 'lpse_spse_up{instance="spse"}'
    assert instant(address["monitor"], q) == 1.0
    spse.check_output("systemctl stop spse")
    try:
        deadline = time.monotonic() + 10  # probe every 2 s, scrape every 2 s
        while instant(address["monitor"], q) != 0.0 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert instant(address["monitor"], q) == 0.0
    finally:
        spse.check_output("systemctl start spse")


def test_traffic_counter_and_rate_agree_with_bytes_sent(
    spse: testinfra.host.Host, monitor: testinfra.host.Host, address: dict[str, str]
) -> None:
    docs = spse_documents(spse, seed=23)
    counter = 'lpse_network_transmit_bytes_total{instance="spse",interface="host0"}'
    time.sleep(5)  # two scrapes since any earlier traffic
    t0 = time.time()
    received = sum(len(https_get_bytes(address["spse"], f"/eproc4/dokumen/{i}")) for i, _ in docs)
    time.sleep(5)  # two scrapes after the transfer
    t1 = time.time()
    assert received == sum(n for _, n in docs)
    sent = instant(address["monitor"], counter, t1) - instant(address["monitor"], counter, t0)
    assert sent == pytest.approx(received, rel=0.02)

    # A steady transfer between two lab hosts (monitor downloads from spse at a capped rate):
    # the rate Prometheus computes during it matches the rate of the interface counter, read
    # straight from the exporter before and after (both count bytes on the wire, headers too).
    doc, size = max(docs, key=lambda d: d[1])
    before, start = wire_bytes(), time.time()
    monitor.check_output(f"curl -sf --limit-rate {size // 16} -o /dev/null https://spse/eproc4/dokumen/{doc}")
    after, end = wire_bytes(), time.time()
    counter_rate = (after - before) / (end - start)
    computed = instant(address["monitor"], f"rate({counter}[10s])", start + (end - start) / 2 + 5)
    assert computed == pytest.approx(counter_rate, rel=0.02)


def wire_bytes() -> float:
    return one(scrape_inside("lab-spse"), "lpse_network_transmit_bytes_total", interface="host0")
