"""LKPP's national page (lpse_status.national_web) over a real VictoriaMetrics (Debian's
package) holding 90 days of six sites' contracts: what is up, down, under maintenance or silent,
the figures against their thresholds, filtering by province, sorting, the drift of a site's
configuration, and a site's 90 days with the days below target, in both languages."""

from __future__ import annotations

import datetime as dt
import html as html_text
import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
from lpse_status.national import Settings, Site
from lpse_status.national_web import Page
from lpse_status.prom import Prometheus

WIB = dt.timezone(dt.timedelta(hours=7), "WIB")
NOW = dt.datetime(2026, 11, 20, 14, 0, tzinfo=WIB).timestamp()
STEP = 300  # the sites here send every 5 minutes (contract_interval_seconds)
DAY = 86400
START = NOW - 90 * DAY
TODAY = dt.datetime(2026, 11, 20, tzinfo=WIB)
# kab-a's two bad days: an outage at 10:00 WIB on each, its 24-hour figure 95 % until a day later.
BAD_DAYS = [TODAY - dt.timedelta(days=10), TODAY - dt.timedelta(days=40)]

SITES = (
    Site("kab-a", "LPSE Kabupaten A", "Jawa Barat"),
    Site("kab-b", "LPSE Kabupaten B", "Jawa Barat"),
    Site("kota-c", "LPSE Kota C", "Jawa Tengah"),
    Site("kab-d", "LPSE Kabupaten D", "Jawa Tengah"),
    Site("kab-e", "LPSE Kabupaten E", "Bali"),  # expected, never sent
)


def contract(site: str, start: float, end: float, **over: object) -> list[dict]:
    """One site's contract from `start` to `end` (VictoriaMetrics' JSON import lines). Values
    can be constants or functions of the time."""
    times = list(range(int(start), int(end) + 1, STEP))
    fingerprint = str(over.get("fingerprint", "aaaa000011112222"))
    series: list[tuple[dict[str, str], object]] = [
        ({"__name__": "lpse_national:contract_info", "contract_version": "1", "lpse_ops_version": "0.9.0",
          "config_fingerprint": fingerprint}, 1),
        ({"__name__": "lpse_national:spse_up"}, over.get("up", 1)),
        ({"__name__": "lpse_national:maintenance_active"}, over.get("maintenance", 0)),
        ({"__name__": "lpse_national:spse_availability_excluding_maintenance_30d:ratio"}, over.get("a30", 1)),
        ({"__name__": "lpse_national:spse_availability_excluding_maintenance_1d:ratio"}, over.get("a1", 1)),
        ({"__name__": "lpse_national:spse_availability_1d:ratio"}, over.get("a1", 1)),
        ({"__name__": "lpse_national:backup_verified_age_seconds", "dataset": "database", "target": "s3"},
         over.get("backup", 3600)),
        ({"__name__": "lpse_national:backup_verified_age_seconds", "dataset": "documents", "target": "portable"}, 7200),
        ({"__name__": "lpse_national:drill_success", "dataset": "database", "target": "s3"}, over.get("drill", 1)),
        ({"__name__": "lpse_national:drill_rto_seconds", "dataset": "database", "target": "s3"}, 95),
        ({"__name__": "lpse_national:disk_days_until_full", "instance": "spse", "role": "documents"},
         over.get("disk", 3650)),
        ({"__name__": "lpse_national:critical_alerts_firing"}, over.get("critical", 0)),
    ]  # fmt: skip
    out = []
    for labels, value in series:
        values = [float(value(t)) if callable(value) else float(value) for t in times]  # type: ignore[arg-type]
        out.append({"metric": labels | {"lpse_site": site}, "values": values, "timestamps": [t * 1000 for t in times]})
    return out


def kab_a_day_figure(t: float) -> float:
    return 0.95 if any(0 <= t - (d.timestamp() + 10 * 3600) < DAY for d in BAD_DAYS) else 1.0


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    if not shutil.which("victoria-metrics"):
        pytest.fail("victoria-metrics is not installed: scripts/setup installs it (Debian's package)")
    d = tmp_path_factory.mktemp("national-store")
    port = free_port()
    proc = subprocess.Popen(
        ["victoria-metrics", f"-storageDataPath={d}", f"-httpListenAddr=127.0.0.1:{port}", "-retentionPeriod=100y",
         "-search.disableCache"],
        stdout=subprocess.DEVNULL, stderr=(d / "log").open("w"),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"VictoriaMetrics did not start: {(d / 'log').read_text()[-2000:]}")
            time.sleep(0.2)
    lines = (
        contract("kab-a", START, NOW, a1=kab_a_day_figure, a30=0.9983)
        + contract("kab-b", START, NOW, up=lambda t: 0 if t > NOW - 1200 else 1, a30=0.97, backup=30 * 3600,
                   drill=0, disk=5.4, critical=lambda t: 1 if t > NOW - 1200 else 0, fingerprint="bbbb000011112222")
        + contract("kota-c", NOW - 30 * DAY, NOW, maintenance=lambda t: 1 if t > NOW - 3600 else 0)
        + contract("kab-d", START, NOW - 2 * DAY)  # silent for two days
        + contract("kab-x", NOW - DAY, NOW)  # sends without being expected
    )  # fmt: skip
    body = "\n".join(json.dumps(x) for x in lines).encode()
    urllib.request.urlopen(urllib.request.Request(f"{url}/api/v1/import", data=body), timeout=60).close()
    urllib.request.urlopen(f"{url}/internal/force_flush", timeout=60).close()
    yield Prometheus(url)
    proc.terminate()
    proc.wait(10)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings(url: str) -> Settings:
    return Settings(
        store_url=url, sites=SITES, availability_target=0.995, backup_max_age_s=26 * 3600, disk_days_warning=7,
        contract_interval_s=STEP, timezone=WIB, listen="127.0.0.1:0",
    )  # fmt: skip


def get(page: Page, path: str, query: str = "") -> tuple[str, str]:
    got: list[str] = []
    body = b"".join(page({"PATH_INFO": path, "QUERY_STRING": query}, lambda status, headers: got.append(status)))
    return got[0], body.decode()


def rows(html: str) -> list[tuple[str, str]]:
    """(site, state) of the table's rows, in order."""
    return re.findall(r'<tr data-site="([^"]+)" data-state="([^"]+)">', html)


def cell(html: str, site: str, col: str) -> tuple[str, str]:
    """(class, text) of a column in a site's row."""
    row = html.split(f'<tr data-site="{site}"', 1)[1].split("</tr>", 1)[0]
    m = re.search(rf'<td class="([^"]*)" data-col="{col}">(.*?)</td>', row, re.S)
    assert m, (site, col, row)
    return m[1], re.sub(r"<[^>]+>", "", m[2]).strip()


@pytest.fixture
def page(store: Prometheus) -> Page:
    return Page(settings(store.url), store, clock=lambda: NOW)


def test_every_site_in_one_table_worst_first(page: Page) -> None:
    status, html = get(page, "/")
    assert status == "200 OK"
    assert rows(html) == [
        ("kab-b", "down"),
        ("kab-d", "silent"),
        ("kab-e", "silent"),
        ("kota-c", "maintenance"),
        ("kab-x", "up"),  # by title: a site LKPP does not expect has only its name
        ("kab-a", "up"),
    ]
    assert cell(html, "kab-a", "availability") == ("ok", "99.83 %")
    assert cell(html, "kab-b", "availability") == ("bad", "97.00 %")
    assert cell(html, "kab-b", "backup") == ("bad", "30.0 jam")
    assert cell(html, "kab-a", "backup") == ("ok", "2.0 jam")  # the oldest of its datasets' newest copies
    assert cell(html, "kab-b", "drill")[0] == "bad" and cell(html, "kab-a", "drill") == ("ok", "lulus (2 menit)")
    assert cell(html, "kab-b", "disk") == ("bad", "5")
    assert cell(html, "kab-a", "disk")[1] == "tidak terisi"
    # The one site on 0.9.0 whose thresholds differ from the others' is flagged.
    assert "konfigurasi berbeda" in html.split('data-site="kab-b"')[1].split("</tr>")[0]
    assert "konfigurasi berbeda" not in html.split('data-site="kab-a"')[1].split("</tr>")[0]
    # A silent site says since when; one that never sent, that it never did.
    kab_d = html.split('data-site="kab-d"')[1].split("</tr>")[0]
    assert "Terakhir mengirim: 2026-11-18 14:00 WIB (diam selama 2 hari)" in kab_d
    assert "belum pernah" in html.split('data-site="kab-e"')[1].split("</tr>")[0]
    assert "1 alert kritis menyala" in html.split('data-site="kab-b"')[1].split("</tr>")[0]
    assert re.search(r'data-count="down">Mati: 1<', html) and re.search(r'data-count="silent">Tidak mengirim: 2<', html)


def test_filter_by_province_and_sort_by_any_column(page: Page) -> None:
    _, html = get(page, "/", "provinsi=Jawa+Barat")
    assert [s for s, _ in rows(html)] == ["kab-b", "kab-a"]
    assert '<option value="Jawa Barat" selected>' in html
    _, html = get(page, "/", "sort=availability")
    # Lowest first; sites without a figure (silent) last, whichever the direction.
    assert [s for s, _ in rows(html)][:4] == ["kab-b", "kab-a", "kota-c", "kab-x"]
    assert {s for s, _ in rows(html)[4:]} == {"kab-d", "kab-e"}
    _, desc = get(page, "/", "sort=availability&desc=1")
    assert [s for s, _ in rows(desc)] == ["kota-c", "kab-x", "kab-a", "kab-b", "kab-d", "kab-e"]
    # The header links keep the filter and flip the direction of the column sorted by.
    _, html = get(page, "/", "provinsi=Jawa+Tengah&sort=disk")
    assert 'href="?provinsi=Jawa+Tengah&amp;sort=disk&amp;desc=1"' in html
    assert 'href="?provinsi=Jawa+Tengah&amp;sort=site"' in html


def test_a_sites_ninety_days_show_its_bad_days(page: Page) -> None:
    status, html = get(page, "/situs/kab-a")
    assert status == "200 OK"
    days = re.findall(r'<tr data-date="([^"]+)">', html)
    assert len(days) == 90 and days[0] == "2026-11-20" and days[-1] == "2026-08-23"
    red = [d for d in days if cell_by_date(html, d) == "bad"]
    assert red == [d.strftime("%Y-%m-%d") for d in BAD_DAYS]
    assert '<span id="below">2</span>' in html
    assert html.count('<rect class="bad"') == 2 and html.count('<rect class="ok"') == 88
    # A site that began sending 30 days ago: the days before are grey, no data.
    _, html = get(page, "/situs/kota-c")
    assert html.count('<rect class="none"') == 59  # 2026-08-23 to 2026-10-20: before it began
    assert "tidak ada data" in html


def cell_by_date(html: str, date: str) -> str:
    row = html.split(f'<tr data-date="{date}">', 1)[1].split("</tr>", 1)[0]
    m = re.search(r'<td class="([^"]*)" data-col="availability">', row)
    assert m
    return m[1]


def test_english_unknown_site_and_a_dead_store(page: Page) -> None:
    _, html = get(page, "/", "lang=en")
    assert 'lang="en"' in html and "Availability, 30 days" in html and "Down" in html
    assert 'href="situs/kab-a?lang=en"' in html
    status, html = get(page, "/situs/kab-zz")
    assert status == "404 Not Found" and "tidak dikenal" in html
    dead = Page(settings("http://127.0.0.1:9"), Prometheus("http://127.0.0.1:9", timeout=2), clock=lambda: NOW)
    status, html = get(dead, "/")
    assert status == "503 Service Unavailable" and "tidak menjawab" in html
    assert get(dead, "/healthz")[0] == "503 Service Unavailable"


def test_an_analysts_own_query_over_every_site(page: Page) -> None:
    """/kueri, the analysts' ad-hoc query (no JavaScript; vmui is the door's /vmui/): each
    series the expression returns over the range, charted and tabled with its last, lowest and
    highest value; the same query's JSON; a query the store refuses says why; both languages."""
    _, html = get(page, "/")
    assert 'href="kueri"' in html
    status, html = get(page, "/kueri")
    assert status == "200 OK" and 'id="examples"' in html and "Kueri bebas" in html
    query = urllib.parse.urlencode({"q": "lpse_national:spse_up", "rentang": "1d"})
    status, html = get(page, "/kueri", query)
    assert status == "200 OK" and 'data-series="4"' in html and "<svg" in html
    row = re.compile(r"<tr data-series=[^>]*><td><code>(.*?)</code></td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td>")
    found = {}
    for labels, *values in row.findall(html):
        site = re.search(r'lpse_site="([^"]+)"', html_text.unescape(labels))
        assert site, labels
        found[site[1]] = values
    # Sites heard from in the day, as (last, lowest, highest); kab-d went silent two days ago.
    assert found == {"kab-a": ["1", "1", "1"], "kab-b": ["0", "0", "1"], "kota-c": ["1", "1", "1"],
                     "kab-x": ["1", "1", "1"]}  # fmt: skip
    assert 'href="../api/v1/query_range?query=lpse_national%3Aspse_up&amp;' in html
    status, html = get(page, "/kueri", urllib.parse.urlencode({"q": "sum((lpse_national:spse_up"}))
    assert status == "200 OK" and 'id="refused"' in html, html[-1500:]
    _, html = get(page, "/kueri", query + "&lang=en")
    assert "Ad-hoc query" in html and "Lowest" in html and 'data-series="4"' in html
