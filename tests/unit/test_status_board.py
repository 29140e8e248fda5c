"""The status board's figures against a real Prometheus (Debian's) filled with known probe data
(`promtool tsdb create-blocks-from openmetrics`): three days of `lpse_spse_up` every 10 s with
one 30-minute outage, and a 60-minute announced maintenance window with 20 minutes down in it.
The availability the page shows must be the one worked out by hand here."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import gzip
import html
import json
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lpse_status import feeds, helpdesk, report
from lpse_status.availability import availability
from lpse_status.incidents import explain, on_notification, postmortem
from lpse_status.maintenance import maintenance_windows
from lpse_status.power import record_power_cuts
from lpse_status.prom import Prometheus, PrometheusError
from lpse_status.records import Incident, incidents, visits
from lpse_status.report import Quarter, build, render_html
from lpse_status.web import Settings, StatusBoard, create_server, current_state, ops_page, public_now, public_page

STEP = 10
# A fixed past period (in 2026 Q4), kept by a retention far longer than the test will live.
END = int(dt.datetime(2026, 11, 20, 5, 0, tzinfo=dt.UTC).timestamp())
START = END - 3 * 86400
OUTAGE = (END - 6 * 3600, END - 6 * 3600 + 1800)  # 30 min down, 6 h before the end
MAINT = (END - 3 * 3600, END - 2 * 3600)  # a 60-minute window...
MAINT_DOWN = (END - 3 * 3600 + 600, END - 3 * 3600 + 600 + 1200)  # ...with 20 minutes down in it
GAP = (END - 12 * 3600, END - 12 * 3600 + 420)


def probe_value(t: int) -> int:
    return 0 if OUTAGE[0] <= t < OUTAGE[1] or MAINT_DOWN[0] <= t < MAINT_DOWN[1] else 1


# For the quarterly report: a disk losing 1 GiB a day, RAM at 75 % for an hour, 1 MB/s out on a
# 100 Mbit/s uplink, a nightly backup that missed one night, one restore drill of 42 s.
GIB = 2**30
BACKUPS = [START + k * 86400 + 5400 for k in (0, 2)]
DRILL = START + 2 * 86400 + 14400


# The server room: mains lost twice (10 and 15 minutes), the second time down to the shutdown
# threshold (LB) for its last 2 minutes; the room at 24 C but for one hour at 29 C.
ON_BATTERY = [(END - 30 * 3600, END - 30 * 3600 + 600), (END - 20 * 3600, END - 20 * 3600 + 900)]
BATTERY_LOW = (END - 20 * 3600 + 780, END - 20 * 3600 + 900)
HOT = (END - 10 * 3600, END - 9 * 3600)
# The second cut went to a clean shutdown: the UPS's timeline as the exporter serves it (the newest
# time of each event), the power-off 800 s after mains was lost, the boot 400 s after that.
CUT = ON_BATTERY[1][0]
POWER_EVENTS = {"ONBATT": CUT, "LOWBATT": CUT + 780, "SHUTDOWN_BEGIN": CUT + 781, "SPSE_CLOSED": CUT + 782,
                "SPSE_STOPPED": CUT + 786, "CHECKPOINT": CUT + 790, "WAL_PUSHED": CUT + 795,
                "POSTGRESQL_STOPPED": CUT + 797, "POWER_OFF": CUT + 800}  # fmt: skip
BOOT = CUT + 1200


# SPSE's schedule as the exporter reports it (each stage while open or closing within a day): two
# tenders the 30-minute outage touches (one closes in it, one's upload window is open across it)
# and three it does not (a stage other than the upload open across it, one closing after, one
# before).
STAGES = [
    ("A1", "Rehabilitasi Gedung", "Upload Dokumen Penawaran", START, OUTAGE[0] + 600),
    ("B2", "Pengadaan Laptop", "Upload Dokumen Penawaran", START, END + 86400),
    ("C3", "Jalan Desa", "Masa Sanggah", START, END + 3 * 86400),
    ("D4", "Jembatan", "Pembukaan Dokumen Penawaran", START, OUTAGE[1] + 600),
    ("E5", "Sumur Bor", "Pengumuman Pascakualifikasi", START, OUTAGE[0] - 60),
]


def schedule_series() -> list[str]:
    out = []
    for edge in ("opens", "closes"):
        out.append(f"# TYPE lpse_spse_schedule_stage_{edge}_timestamp_seconds gauge")
        for tender, name, stage, opens, closes in STAGES:
            labels = f'instance="spse",tender="{tender}",name="{name}",stage="{stage}"'
            value = opens if edge == "opens" else closes
            out += [f"lpse_spse_schedule_stage_{edge}_timestamp_seconds{{{labels}}} {value} {t}"
                    for t in range(START, min(END, closes) + 1, 60)]  # fmt: skip
    return out


def room_series() -> list[str]:
    out = ["# TYPE lpse_ups_status gauge"]
    for t in range(START, END + 1, 60):
        ob = any(a <= t < b for a, b in ON_BATTERY)
        for flag, on in (("OL", not ob), ("OB", ob), ("LB", BATTERY_LOW[0] <= t < BATTERY_LOW[1])):
            out.append(f'lpse_ups_status{{instance="spse",job="lpse",ups="ups",flag="{flag}"}} {int(on)} {t}')
    out += ["# TYPE lpse_power_event_timestamp_seconds gauge"]
    for event, at in POWER_EVENTS.items():
        labels = f'instance="spse",job="lpse",event="{event}"'
        # Served from the event on, but not while the host is off.
        out += [
            f"lpse_power_event_timestamp_seconds{{{labels}}} {at} {t}"
            for t in range(at - at % 60 + 60, END + 1, 60)
            if not POWER_EVENTS["POWER_OFF"] < t < BOOT
        ]
    out += ["# TYPE lpse_boot_time_timestamp_seconds gauge"]
    out += [
        f'lpse_boot_time_timestamp_seconds{{instance="spse",job="lpse"}} {START - 86400 if t < BOOT else BOOT} {t}'
        for t in range(START, END + 1, 60)
        if not POWER_EVENTS["POWER_OFF"] < t < BOOT
    ]
    out += ["# TYPE lpse_ups_up gauge", "# TYPE lpse_ups_battery_charge_ratio gauge"]
    for t in range(START, END + 1, 60):
        ob = any(a <= t < b for a, b in ON_BATTERY)
        out.append(f'lpse_ups_up{{instance="spse",job="lpse",ups="ups"}} 1 {t}')
        out.append(f'lpse_ups_battery_charge_ratio{{instance="spse",job="lpse",ups="ups"}} {0.8 if ob else 1} {t}')
    # What Prometheus wrote while the room was hot: the alert, as the rule manager keeps it.
    out += ["# TYPE ALERTS gauge"]
    out += [
        f'ALERTS{{alertname="RoomTooHot",alertstate="firing",instance="monitor",job="lpse",chip="room",'
        f'sensor="room",severity="warning"}} 1 {t}'
        for t in range(HOT[0] + 300, HOT[1] + 1, 60)
    ]
    out += ["# TYPE lpse_temperature_celsius gauge"]
    out += [
        f'lpse_temperature_celsius{{instance="monitor",job="lpse",chip="room",sensor="room"}} '
        f"{29 if HOT[0] <= t <= HOT[1] else 24} {t}"
        for t in range(START, END + 1, 60)
    ]
    return out


def report_series() -> list[str]:
    fs = 'instance="spse",job="lpse",mountpoint="/var/lib/spse/documents"'
    net = 'instance="spse",job="lpse",interface="eth0"'
    host = 'instance="spse",job="lpse"'
    copy = 'instance="spse",job="lpse",dataset="database",target="s3"'
    out = ["# TYPE lpse_filesystem_avail_bytes gauge"]
    out += [
        f"lpse_filesystem_avail_bytes{{{fs}}} {50 * GIB - (t - START) * GIB // 86400} {t}"
        for t in range(START, END + 1, 60)
    ]
    out += ["# TYPE lpse_filesystem_size_bytes gauge"]
    out += [f"lpse_filesystem_size_bytes{{{fs}}} {100 * GIB} {t}" for t in range(START, END + 1, 60)]
    out += ["# TYPE lpse_memory_available_bytes gauge", "# TYPE lpse_memory_total_bytes gauge"]
    for t in range(START, END + 1, 60):
        out.append(f"lpse_memory_available_bytes{{{host}}} {GIB if END - 7200 <= t < END - 3600 else 3 * GIB} {t}")
        out.append(f"lpse_memory_total_bytes{{{host}}} {4 * GIB} {t}")
    out += ["# TYPE lpse_network_transmit_bytes counter"]
    out += [
        f"lpse_network_transmit_bytes_total{{{net}}} {(t - START) * 1_000_000} {t}" for t in range(START, END + 1, 60)
    ]
    out += ["# TYPE lpse_network_contracted_bandwidth_bytes gauge"]
    out += [f"lpse_network_contracted_bandwidth_bytes{{{net}}} 12500000 {t}" for t in range(START, END + 1, 60)]
    out += ["# TYPE lpse_backup_last_success_timestamp_seconds gauge"]
    for t in range(BACKUPS[0], END + 1, 600):
        last = max(b for b in BACKUPS if b <= t)
        out.append(f"lpse_backup_last_success_timestamp_seconds{{{copy}}} {last} {t}")
    out += [
        "# TYPE lpse_backup_drill_last_success_timestamp_seconds gauge",
        "# TYPE lpse_backup_drill_last_run_duration_seconds gauge",
    ]
    for t in range(DRILL, END + 1, 600):
        out.append(f"lpse_backup_drill_last_success_timestamp_seconds{{{copy}}} {DRILL} {t}")
        out.append(f"lpse_backup_drill_last_run_duration_seconds{{{copy}}} 42 {t}")
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    d = tmp_path_factory.mktemp("prom")
    lines = ["# TYPE lpse_spse_up gauge"]
    lines += [f'lpse_spse_up{{instance="spse",job="lpse"}} {probe_value(t)} {t}' for t in range(START, END + 1, STEP)]
    lines += ["# TYPE up gauge"] + [f'up{{instance="spse",job="lpse"}} 1 {t}' for t in range(START, END + 1, STEP)]
    # Another SPSE whose monitoring was itself down for 7 minutes, and whose data ends 2 h early.
    lines += [f'lpse_spse_up{{instance="gappy",job="lpse"}} 1 {t}' for t in range(START, END - 7200 + 1, STEP)
              if not GAP[0] <= t < GAP[1]]  # fmt: skip
    lines += report_series() + room_series() + schedule_series()
    (d / "data.om").write_text("\n".join(lines) + "\n# EOF\n")
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(d / "data.om"), str(d / "tsdb")],
        check=True, capture_output=True,
    )  # fmt: skip
    (d / "prometheus.yml").write_text("global: {scrape_interval: 1h}\nscrape_configs: []\n")
    port = free_port()
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={d / 'prometheus.yml'}", f"--storage.tsdb.path={d / 'tsdb'}",
         "--storage.tsdb.retention.time=36500d", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=(d / "log").open("w"),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"Prometheus did not start: {(d / 'log').read_text()[-2000:]}")
    yield url
    proc.terminate()
    proc.wait(10)


class Served:
    """The status board served as in production (waitress), on a free port; closed from the
    thread that serves it (waitress's loop does not take its socket closed under it)."""

    def __init__(self, s: Settings) -> None:
        self.server = create_server(StatusBoard(s), "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            self.server.asyncore.loop(timeout=0.05, map=self.server._map, count=1)
        self.server.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)


def settings(url: str, records: Path) -> Settings:
    return Settings(prometheus_url=url, site_name="LPSE Kota Uji", spse_instance="spse", records_dir=records)


def test_availability_matches_the_known_outages(prometheus: str) -> None:
    prom = Prometheus(prometheus)
    day = availability(prom, "spse", END - 86400, END, STEP, [MAINT])
    assert day is not None
    down = 1800 + 1200
    assert day.up_share == pytest.approx(1 - down / 86400, abs=2 * STEP / 86400)
    assert day.excluding_maintenance == pytest.approx((86400 - 3600 - 1800) / (86400 - 3600), abs=2 * STEP / 86400)
    assert day.measured_from == END - 86400
    # 30 days asked, 3 days measured: the figure says since when.
    month = availability(prom, "spse", END - 30 * 86400, END, STEP)
    assert month is not None and month.measured_from == pytest.approx(START, abs=STEP)
    assert month.up_share == pytest.approx(1 - down / (END - START), abs=2 * STEP / 86400)
    # A period with no probe result at all has no figure rather than 0% or 100%.
    assert availability(prom, "spse", START - 10 * 86400, START - 9 * 86400, STEP) is None
    assert availability(prom, "other-host", END - 86400, END, STEP) is None


def test_time_without_a_probe_result_counts_as_down_from_its_first_second(prometheus: str, tmp_path: Path) -> None:
    """One rule for every gap: 7 minutes without results (Prometheus itself down) are 7 minutes
    down, not 2 (a 5-minute lookback would carry the last result over); data that ends early counts
    the rest down and says how much; only the time before the very first result is left out."""
    prom = Prometheus(prometheus)
    day = availability(prom, "gappy", END - 86400, END, STEP)
    assert day is not None and day.measured_from == END - 86400
    assert day.up_share == pytest.approx(1 - (420 + 7200) / 86400, abs=STEP / 86400)
    assert day.missing_s == pytest.approx(420 + 7200, abs=STEP)
    page = public_page(dataclasses.replace(settings(prometheus, tmp_path), spse_instance="gappy"), "en", now=END)
    assert "127 minutes without monitoring data, counted as down" in page
    month = availability(prom, "gappy", END - 30 * 86400, END, STEP)
    assert month is not None and month.measured_from == pytest.approx(START, abs=STEP)
    assert month.missing_s == pytest.approx(420 + 7200, abs=STEP), "the time before the first result is left out"


def test_state_is_up_down_maintenance_or_unknown(prometheus: str, tmp_path: Path) -> None:
    prom = Prometheus(prometheus)
    s = settings(prometheus, tmp_path)
    assert current_state(prom, s, [], END) == "up"
    assert current_state(prom, s, [], OUTAGE[0] + 600) == "down"
    assert current_state(prom, s, [], END + 600) == "unknown", "no probe for 10 minutes is not 'up'"
    windows = [w for w in maintenance_windows(tmp_path)]
    assert windows == []
    (tmp_path / "x.json").write_text("{not json")  # a broken record is skipped
    assert maintenance_windows(tmp_path) == []


def save_window(folder: Path, start: float, end: float) -> None:
    """A maintenance window's record, as playbooks/maintenance.yml writes it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{int(end)}.json").write_text(
        json.dumps({"start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
                    "end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end)), "ended_at": None,
                    "reason_id": "Ganti disk", "reason_en": "Disk replacement", "forced_over_blackouts": []})
    )  # fmt: skip


def test_public_page_in_both_languages_shows_the_figures_notice_and_explained_incidents(
    prometheus: str, tmp_path: Path
) -> None:
    save_window(tmp_path / "maintenance", *MAINT)
    Incident(
        id="2026-11-30-spsedown", alertname="SpseDown", instance="spse", severity="critical",
        first_failure=OUTAGE[0], alert_start=OUTAGE[0] + 20, notified=OUTAGE[0] + 25, resolved=OUTAGE[1] + 10,
        recovered=OUTAGE[1], summary_id="SPSE tidak dapat diakses", summary_en="SPSE unreachable",
        cause_id="Disk penuh oleh log", cause_en="Disk filled by logs", actions=["Log dirotasi"], published=True,
    ).save(tmp_path / "incidents")  # fmt: skip
    Incident(
        id="draft", alertname="SpseDown", instance="spse", severity="critical", first_failure=END - 100,
        alert_start=END - 80, notified=None, resolved=None, recovered=None,
    ).save(tmp_path / "incidents")  # fmt: skip
    s = settings(prometheus, tmp_path)

    page = public_page(s, "id", now=END)
    assert 'data-state="up"' in page and "SPSE berjalan normal" in page
    expected = 100 * (1 - 3000 / 86400)
    assert f"<td class=pct>{expected:.2f}%</td>" in page
    assert "diukur sejak" in page, "the 30-day figure covers only 3 days and must say so"
    assert "Disk penuh oleh log" in page and "durasi 30 min" in page
    assert "draft" not in page, "an unpublished incident is not public"
    assert "Ganti disk" in page  # past maintenance listed
    en = public_page(s, "en", now=END)
    assert "SPSE is working normally" in en and "Disk filled by logs" in en and 'lang="en"' in en

    during = public_page(s, "id", now=MAINT[0] + 900)
    assert 'data-state="maintenance"' in during and 'id="maintenance"' in during and "Ganti disk" in during
    down = public_page(s, "id", now=OUTAGE[0] + 600)
    assert 'data-state="down"' in down and "SPSE sedang terganggu" in down


def prometheus_queries(url: str) -> int:
    """Instant queries Prometheus has answered so far, by its own count."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(
        int(float(m[1]))
        for m in re.finditer(r'^prometheus_http_requests_total\{[^}]*handler="/api/v1/query"[^}]*\} (\S+)$', text, re.M)
    )


def test_readers_within_a_minute_share_one_computation_of_the_uptime_figures(prometheus: str, tmp_path: Path) -> None:
    server = Served(settings(prometheus, tmp_path))
    page_url = f"{server.url}/"
    try:

        def load(query: str = "") -> tuple[str, int]:
            before = prometheus_queries(prometheus)
            with urllib.request.urlopen(page_url + query, timeout=30) as r:
                body = r.read().decode()
            return body, prometheus_queries(prometheus) - before

        first, asked_first = load()
        again, asked_again = load("?lang=en")
        assert asked_first >= 1 + 3, "the current state, and at least one query per uptime figure"
        assert asked_again == 1, "within the minute only the current state is asked for"
        assert re.findall(r"[\d.]+%", first) == re.findall(r"[\d.]+%", again)
        # An announced window changes the figures at once.
        (tmp_path / "maintenance").mkdir()
        (tmp_path / "maintenance" / f"{MAINT[1]}.json").write_text(
            json.dumps({"start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(MAINT[0])),
                        "end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(MAINT[1])), "ended_at": None,
                        "reason_id": "Ganti disk", "reason_en": "Disk replacement", "forced_over_blackouts": []})
        )  # fmt: skip
        _, asked_after = load()
        assert asked_after > 1
    finally:
        server.close()


def test_the_webhook_opens_records_only_with_alertmanagers_token(prometheus: str, tmp_path: Path) -> None:
    token = "t" * 40
    s = dataclasses.replace(settings(prometheus, tmp_path), webhook_token=token)
    server = Served(s)
    labels = {"alertname": "SpseDown", "severity": "critical", "instance": "spse"}
    firing = {"alerts": [{"status": "firing", "startsAt": "2026-11-20T03:00:00Z", "labels": labels}]}

    def post(headers: dict[str, str]) -> int:
        req = urllib.request.Request(
            f"{server.url}/alertmanager",
            data=json.dumps(firing).encode(),
            headers={"Content-Type": "application/json"} | headers,
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    try:
        assert post({}) == 401
        assert post({"Authorization": "Bearer " + "t" * 39}) == 401
        assert not (tmp_path / "incidents").exists() or not list((tmp_path / "incidents").iterdir())
        assert post({"Authorization": f"Bearer {token}"}) == 200
        assert len(list((tmp_path / "incidents").glob("*.json"))) == 1
    finally:
        server.close()
    # No token configured: nothing is accepted.
    bare = Served(settings(prometheus, tmp_path))
    try:
        req = urllib.request.Request(f"{bare.url}/alertmanager", data=b"{}")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=30)
        assert refused.value.code == 401
    finally:
        bare.close()


def test_pages_say_so_when_prometheus_is_gone(tmp_path: Path) -> None:
    s = settings(f"http://127.0.0.1:{free_port()}", tmp_path)
    page = public_page(s, "id")
    assert 'data-state="unknown"' in page and "Data pemantauan tidak tersedia" in page
    assert "did not answer" in ops_page(s, 24)
    with pytest.raises(PrometheusError, match="did not answer"):
        Prometheus(s.prometheus_url).value("vector(1)")


def test_ops_page_draws_the_graphs(prometheus: str, tmp_path: Path) -> None:
    page = ops_page(settings(prometheus, tmp_path), 24, now=END)
    assert page.count("<svg") == 6
    assert "SPSE jalan (1) / mati (0)" in page and "<path d=" in page
    assert "SPSE up (1) / down (0)" in ops_page(settings(prometheus, tmp_path), 24, "en", now=END)
    assert "spse" in page and "tidak ada data / no data" in page  # no disk data in this Prometheus


def test_incident_drafted_from_the_notifications_with_the_probe_timeline(prometheus: str, tmp_path: Path) -> None:
    """Alertmanager's payloads (as its webhook posts them) open and close the draft; the times of
    the first failed and first good probe come from Prometheus."""
    prom, folder = Prometheus(prometheus), tmp_path / "incidents"
    alert = {"labels": {"alertname": "SpseDown", "instance": "spse", "severity": "critical"},
             "annotations": {"summary": "SPSE tidak menjawab", "summary_en": "SPSE does not answer"},
             "startsAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(OUTAGE[0] + 20))}  # fmt: skip
    firing = {"status": "firing", "alerts": [alert | {"status": "firing", "endsAt": "0001-01-01T00:00:00Z"}]}
    ids = on_notification(firing, folder, prom, STEP, now=OUTAGE[0] + 25)
    (draft,) = incidents(folder)
    assert ids == [draft.id] and draft.notified == OUTAGE[0] + 25 and draft.resolved is None
    assert draft.first_failure == OUTAGE[0], "the first failed probe, 20 s before the alert"
    on_notification(firing, folder, prom, STEP, now=OUTAGE[0] + 3600)  # a repeat keeps the first time
    assert incidents(folder)[0].notified == OUTAGE[0] + 25
    end = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(OUTAGE[1] + 10))
    on_notification(
        {"status": "resolved", "alerts": [alert | {"status": "resolved", "endsAt": end}]}, folder, prom, STEP
    )
    (done,) = incidents(folder)
    assert done.resolved == OUTAGE[1] + 10 and done.recovered == OUTAGE[1]
    assert done.duration_s == 1800
    # Warnings and the Watchdog make no incident.
    warning = alert | {"labels": {"alertname": "DiskWillFillSoon", "instance": "spse", "severity": "warning"}}
    assert on_notification({"alerts": [warning]}, folder, prom, STEP) == []

    with pytest.raises(ValueError, match="cause in both languages"):
        explain(folder, done.id, "Disk penuh", "", [], publish=True)
    explain(folder, done.id, "Disk penuh oleh log", "Disk filled by logs", ["Log dirotasi"], publish=True)
    assert incidents(folder)[0].published
    doc = html.unescape(postmortem(incidents(folder)[0], prom, "LPSE Kota Uji", dt.UTC, STEP))
    for shown in ("30.0 min", "Disk filled by logs", "Log dirotasi", 'max(lpse_spse_up{instance="spse"})', "<svg"):
        assert shown in doc
    assert time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(OUTAGE[0])) in doc


def test_quarterly_report_has_the_known_figures_in_html_and_pdf(prometheus: str, tmp_path: Path) -> None:
    wib = dt.timezone(dt.timedelta(hours=7), "WIB")
    q = Quarter.parse("2026Q4", wib)
    records = tmp_path / "records"
    Incident(
        id="i1", alertname="SpseDown", instance="spse", severity="critical", first_failure=OUTAGE[0],
        alert_start=OUTAGE[0] + 20, notified=OUTAGE[0] + 25, resolved=OUTAGE[1] + 10, recovered=OUTAGE[1],
        cause_id="Disk penuh oleh log", cause_en="Disk filled by logs",
    ).save(records / "incidents")  # fmt: skip
    logs = tmp_path / "nginx"
    logs.mkdir()

    def line(user: str, at: float, path: str, status: int) -> str:
        when = dt.datetime.fromtimestamp(at, wib).strftime("%d/%b/%Y:%H:%M:%S %z")
        return f'203.0.113.9 - {user} [{when}] "GET {path} HTTP/1.1" {status} 120 "-" "curl" rt=0.01 urt=0.01\n'

    (logs / "lkpp-access.log").write_text(
        line("lkpp", END - 3600, "/api/v1/query?query=up", 200) + line("lkpp", END - 3000, "/-/reload", 403)
        + line("-", END - 2000, "/api/v1/query", 401)
    )  # fmt: skip
    with gzip.open(logs / "lkpp-access.log.2.gz", "wt") as f:
        f.write(
            line("lkpp", END - 86400, "/federate?match[]=up", 200) + line("lkpp", q.start - 86400, "/federate", 200)
        )
    r = build(Prometheus(prometheus), "LPSE Kota Uji", "spse", q, records, report.lkpp_logs(logs), 0.995, STEP, now=END)
    page = render_html(r)
    assert f"Laporan Operasional SPSE Triwulan {report.ROMAN[q.number - 1]} {q.year}" in page
    assert f'<td id="overall">{(1 - 3000 / (END - START)) * 100:.2f}%</td>' in page
    assert '<td id="downtime">50 menit</td>' in page and "Diukur sejak" in page and "TIDAK tercapai" in page
    assert "Disk penuh oleh log" in page and ">30 menit<" in page
    (disk,) = r.disks
    assert disk.avail == 47 * GIB and disk.growth_per_day == pytest.approx(GIB, rel=1e-3)
    assert "47 hari lagi" in page and "1024.0 MiB" in page
    assert r.ram_peak == {"spse": pytest.approx(0.75)}
    assert "8.00 Mbit/s" in page and "100 Mbit/s (8%)" in page
    (backup,) = r.backups
    assert (backup.days_with_copy, backup.days_measured, backup.last_success) == (2, 3, BACKUPS[1])
    assert "2 dari 3 hari (67%)" in page
    assert r.drills == {"s3": (1, 42.0)} and "42 detik" in page
    (lkpp,) = r.lkpp
    assert (lkpp.requests, len(lkpp.days), lkpp.refused, r.lkpp_failed_logins) == (3, 2, 1, 1)
    assert r.power == [report.Power("ups", 1500.0, 2, 1)]
    assert "<td>25 menit</td><td>2 kali</td><td>1 kali</td>" in page
    assert r.hottest_hour == (29.0, HOT[1]) and "<span id=hottest>29.0 °C</span>" in page

    pdf = tmp_path / "laporan.pdf"
    report.write_pdf(page, pdf)
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert (
        pdf.read_bytes().startswith(b"%PDF")
        and "Triwulan" in text
        and f"{(1 - 3000 / (END - START)) * 100:.2f}%" in text
    )
    with pytest.raises(ValueError, match="2026Q4"):
        Quarter.parse("Q4-2026", wib)


def test_the_command_line_explains_publishes_and_exports(
    prometheus: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lpse_status.__main__ import main

    records = tmp_path / "records"
    Incident(
        id="i2", alertname="SpseDown", instance="spse", severity="critical", first_failure=OUTAGE[0],
        alert_start=OUTAGE[0] + 20, notified=OUTAGE[0] + 25, resolved=OUTAGE[1] + 10, recovered=OUTAGE[1],
    ).save(records / "incidents")  # fmt: skip
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'prometheus_url = "{prometheus}"\nsite_name = "LPSE Uji"\nspse_instance = "spse"\nrecords_dir = "{records}"\n'
    )
    base = ["--config", str(cfg), "incidents"]
    assert main([*base, "explain", "i2", "--cause-id", "Disk penuh", "--publish"]) == 1
    assert "both languages" in capsys.readouterr().err
    args = ["--cause-id", "Disk penuh", "--cause-en", "Disk full"]
    args += ["--action", "Log dihapus", "--action", "Disk ditambah"]
    assert main([*base, "explain", "i2", *args, "--publish"]) == 0
    (i,) = incidents(records / "incidents")
    assert i.published and i.actions == ["Log dihapus", "Disk ditambah"] and i.cause_en == "Disk full"
    assert main([*base, "list"]) == 0 and "i2" in capsys.readouterr().out
    assert main([*base, "export", "i2", "--out", str(tmp_path / "pm.html")]) == 0
    assert "Disk ditambah" in (tmp_path / "pm.html").read_text()
    assert main([*base, "export", "nope", "--out", str(tmp_path / "x.html")]) == 1
    out = str(tmp_path / "r")
    assert main(["--config", str(cfg), "report", "--quarter", "2026Q4", "--out", out, "--html-only"]) == 0
    assert (tmp_path / "r" / "laporan-spse-2026Q4.html").exists()


def test_server_room_visits_need_a_permission_and_reach_the_quarterly_report(
    prometheus: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """R4: who went into the server room, when, allowed by whom and why, kept on the monitoring
    server through the command line (what `fab visit-in`/`visit-out` run there) and listed in the
    quarter's report; a visit without permission or a reason is refused and nothing is written."""
    from lpse_status.__main__ import main

    records = tmp_path / "records"
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'prometheus_url = "{prometheus}"\nsite_name = "LPSE Uji"\nspse_instance = "spse"\nrecords_dir = "{records}"\n'
    )
    base = ["--config", str(cfg), "visits"]
    entered = dt.datetime.fromtimestamp(END - 7200, dt.timezone(dt.timedelta(hours=7))).isoformat()
    assert main([*base, "in", "--visitor", "Budi", "--purpose", "Ganti baterai UPS", "--allowed-by", ""]) == 1
    assert "--allowed-by" in capsys.readouterr().err
    assert main([*base, "in", "--visitor", "Budi", "--purpose", "  ", "--allowed-by", "Kepala LPSE"]) == 1
    assert "--purpose" in capsys.readouterr().err
    assert (
        main([*base, "in", "--visitor", "Budi", "--purpose", "x", "--allowed-by", "K", "--at", "2026-11-20T03:00"]) == 1
    )
    assert "zone" in capsys.readouterr().err
    assert not list(records.glob("visits/*.json")), "a refused visit was written"
    args = ["--visitor", "Budi Santoso", "--organisation", "PT UPS Nusantara", "--purpose", "Ganti baterai UPS"]
    args += ["--allowed-by", "Kepala LPSE", "--escort", "Sari (admin)", "--at", entered]
    assert main([*base, "in", *args]) == 0
    visit_id = capsys.readouterr().out.split(":")[0]
    assert main([*base, "list", "--open"]) == 0 and "Budi Santoso" in capsys.readouterr().out
    left = dt.datetime.fromtimestamp(END - 3600, dt.UTC).isoformat()
    assert main([*base, "out", visit_id, "--at", left]) == 0
    assert main([*base, "out", visit_id, "--at", left]) == 1 and "already left" in capsys.readouterr().err
    assert main([*base, "list", "--open"]) == 0 and "Budi" not in capsys.readouterr().out
    # One visit in the quarter before: not in this quarter's report.
    before = dt.datetime(2026, 9, 1, 9, 0, tzinfo=dt.UTC).isoformat()
    assert main([*base, "in", "--visitor", "Andi", "--purpose", "Kabel", "--allowed-by", "Kepala", "--at", before]) == 0
    andi = capsys.readouterr().out.split(":")[0]
    assert main([*base, "out", andi, "--at", before.replace("09:00", "09:40")]) == 0

    r = build(Prometheus(prometheus), "LPSE Uji", "spse", Quarter.parse("2026Q4", dt.UTC), records, [], 0.995, STEP,
              now=END)  # fmt: skip
    assert [(v.visitor, v.entered, v.left) for v in r.visits] == [("Budi Santoso", END - 7200, END - 3600)]
    page = render_html(r)
    row = re.search(r"<table id=visits>.*?</table>", page, re.S)
    assert row, page[-2000:]
    for shown in ("Budi Santoso (PT UPS Nusantara)", "Ganti baterai UPS", "Kepala LPSE", "Sari (admin)"):
        assert shown in html.unescape(row[0])
    assert "Andi" not in page


def test_a_power_cut_becomes_an_incident_from_the_ups_timeline_once_the_host_is_back(
    prometheus: str, tmp_path: Path
) -> None:
    """R4: the clean shutdown's timeline, read from Prometheus after the boot, is an incident
    record with every step to the second; nothing while the host is still off; once only."""
    prom, folder = Prometheus(prometheus), tmp_path / "incidents"
    off = POWER_EVENTS["POWER_OFF"]
    assert record_power_cuts(prom, folder, off + 60) == []  # still off: Prometheus has nothing newer
    assert record_power_cuts(prom, folder, BOOT - 30) == []
    made = record_power_cuts(prom, folder, BOOT + 600)
    assert len(made) == 1
    (cut,) = incidents(folder)
    assert (cut.alertname, cut.instance, cut.severity, cut.published) == ("PowerCut", "spse", "critical", False)
    assert cut.alert_start == POWER_EVENTS["ONBATT"]  # mains lost
    assert cut.first_failure == POWER_EVENTS["SPSE_CLOSED"]  # SPSE stopped taking requests
    assert cut.resolved == BOOT
    assert cut.recovered is not None and BOOT <= cut.recovered <= BOOT + STEP  # the first good probe after the boot
    assert "13 min" in cut.cause_en and "the last WAL segment was pushed" in cut.cause_en
    assert "13 menit" in cut.cause_id
    steps = [line.rsplit("(", 1)[1].rstrip(")") for line in cut.actions[:-2]]
    assert steps == list(POWER_EVENTS), cut.actions  # every step, in the order it happened
    assert cut.actions[0].startswith(dt.datetime.fromtimestamp(CUT, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))
    assert record_power_cuts(prom, folder, BOOT + 1200) == []  # recorded once


def test_ops_page_shows_power_and_temperature_judged_by_the_alerts(prometheus: str, tmp_path: Path) -> None:
    """The server room on /ops (R4): the UPS and the temperatures now, a row flagged with the alert
    that fires for it (the rules' own thresholds, not the page's)."""
    hot = ops_page(settings(prometheus, tmp_path), 1, now=HOT[0] + 1800)
    ups = hot[hot.index("<table id=ups>") : hot.index("</table>", hot.index("<table id=ups>"))]
    assert "ups (spse)" in ups and "<td>OL</td>" in ups and "<td>100%</td>" in ups
    temps = hot[hot.index("<table id=temperatures>") :]
    assert '<tr class="flag"><td>monitor</td><td>room</td><td>room</td><td>29.0 °C</td>' in temps
    assert "RoomTooHot" in temps
    on_battery = ops_page(settings(prometheus, tmp_path), 1, now=ON_BATTERY[1][0] + 300)
    assert "<td>OB</td>" in on_battery and "<td>80%</td>" in on_battery
    cool = ops_page(settings(prometheus, tmp_path), 1, now=HOT[1] + 3600)
    assert "RoomTooHot" not in cool and "<td>24.0 °C</td>" in cool and '<tr class="flag">' not in cool


def test_ops_form_records_visits_with_the_login_and_refuses_a_foreign_form(prometheus: str, tmp_path: Path) -> None:
    server = Served(settings(prometheus, tmp_path))
    url = f"{server.url}/ops"
    folder = tmp_path / "visits"
    folder.mkdir()

    def post(form: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
        req = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), headers=headers)
        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(req, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    entry = {"action": "enter", "visitor": "Budi", "organisation": "PLN", "purpose": "ganti baterai UPS",
             "allowed_by": "Kepala LPSE"}  # fmt: skip
    try:
        assert post(entry, {})[0] == 401  # not through nginx's login
        # As nginx passes a browser's post: its own Host (this address), the browser's as X-Forwarded-Host.
        nginx = {"X-Forwarded-User": "ops", "X-Forwarded-Host": "monitor"}
        assert post(entry, nginx | {"Origin": "https://evil.example"})[0] == 403
        assert not list(folder.iterdir())
        code, text = post(entry | {"allowed_by": " "}, {"X-Forwarded-User": "ops"})
        assert code == 400 and "--allowed-by" in text
        assert post(entry, nginx | {"Origin": "https://monitor"})[0] == 303
        (v,) = visits(folder)
        assert (v.visitor, v.allowed_by, v.recorded_by, v.left) == ("Budi", "Kepala LPSE", "ops", None)
        page = ops_page(settings(prometheus, tmp_path), 1, now=END)
        assert "1 orang di dalam" in page and f'value="{v.id}"' in page
        assert post({"action": "leave", "visit": v.id}, {"X-Forwarded-User": "ops"})[0] == 303
        assert visits(folder)[0].left is not None
        assert "0 inside now" in ops_page(settings(prometheus, tmp_path), 1, "en", now=END)
        code, text = post({"action": "leave", "visit": v.id}, {"X-Forwarded-User": "ops"})
        assert code == 400 and "already left" in text
    finally:
        server.close()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def test_on_call_updates_reach_the_public_page_at_once_and_end_with_resolved(
    prometheus: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """R14: while SPSE is disrupted the public page says what is known, updated by on-call from the
    command line (what `fab incident-update` runs) or the /ops form, each update with its time."""
    from lpse_status.__main__ import main

    cfg = tmp_path / "config.toml"
    cfg.write_text(f'prometheus_url = "{prometheus}"\nsite_name = "LPSE Uji"\nspse_instance = "spse"\n'
                   f'records_dir = "{tmp_path}"\n')  # fmt: skip
    base = ["--config", str(cfg), "incidents"]
    s = settings(prometheus, tmp_path)
    assert main([*base, "open", "--summary-id", " ", "--message-id", "x"]) == 1
    assert "--summary-id" in capsys.readouterr().err and not list((tmp_path / "incidents").glob("*.json"))
    opened = ["open", "--summary-id", "Unggah dokumen penawaran gagal", "--summary-en", "Bid uploads fail",
              "--severity", "major", "--affects", "upload", "--message-id", "Sedang kami periksa.",
              "--by", "sari"]  # fmt: skip
    assert main([*base, *opened]) == 0
    iid = capsys.readouterr().out.split(":")[0]
    page = public_page(s, "id", now=END)
    live = re.search(rf'<div class="live" id="live-{re.escape(iid)}" data-severity="major">(.*?)</div>', page)
    assert live, page[:3000]
    assert "Unggah dokumen penawaran gagal" in live[1] and "Gangguan besar" in live[1]
    assert "Unggah dokumen penawaran" in live[1] and "Sedang diselidiki</b>: Sedang kami periksa." in live[1]
    # English: the English words where given, the Indonesian ones where not.
    en = public_page(s, "en", now=END)
    assert "Bid uploads fail" in en and "Investigating</b>: Sedang kami periksa." in en

    server = Served(s)
    url = f"{server.url}"

    def post(form: dict[str, str | list[str]]) -> tuple[int, str]:
        req = urllib.request.Request(f"{url}/ops", data=urllib.parse.urlencode(form, doseq=True).encode(),
                                     headers={"X-Forwarded-User": "budi"})  # fmt: skip
        try:
            with urllib.request.build_opener(NoRedirect).open(req, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    try:
        update: dict[str, str | list[str]] = {
            "action": "incident_update", "incident": iid, "state": "identified", "severity": "critical",
            "affects": ["upload", "login"], "message_id": "Disk penyimpanan dokumen penuh.",
            "message_en": "The document store's disk is full.",
        }  # fmt: skip
        assert post(update | {"state": "fixed"}) == (400, "state 'fixed' is not one of investigating, identified, "
                                                          "monitoring, resolved\n")  # fmt: skip
        assert post(update | {"message_id": ""})[0] == 400
        assert post(update)[0] == 303
        with urllib.request.urlopen(f"{url}/?lang=en", timeout=30) as r:
            en = r.read().decode()
        assert "The document store&#39;s disk is full." in en and "Full outage" in en and "Logging in" in en
        assert en.index("Identified</b>") < en.index("Investigating</b>"), "newest update first"
        assert post(update | {"state": "resolved", "message_id": "Sudah normal kembali."})[0] == 303
        code, text = post(update | {"state": "monitoring"})
        assert code == 400 and "resolved" in text and "open a new one" in text
    finally:
        server.close()
    (i,) = incidents(tmp_path / "incidents")
    assert [u["state"] for u in i.updates] == ["investigating", "identified", "resolved"]
    assert [u["by"] for u in i.updates] == ["sari", "budi", "budi"] and i.resolved == i.updates[-1]["at"]
    page = public_page(s, "id", now=END)
    assert 'class="live"' not in page, "a resolved incident is no longer ongoing"
    past = re.search(rf'<div class="incident" id="incident-{re.escape(iid)}">(.*?)</div>', page)
    assert past and "Selesai</b>: Sudah normal kembali." in past[1]


def test_helpdesk_reports_are_kept_tied_to_incidents_and_answered(
    prometheus: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lpse_status.__main__ import main

    cfg = tmp_path / "config.toml"
    cfg.write_text(f'prometheus_url = "{prometheus}"\nsite_name = "LPSE Uji"\nspse_instance = "spse"\n'
                   f'records_dir = "{tmp_path}"\n')  # fmt: skip
    base = ["--config", str(cfg), "helpdesk"]
    report = ["add", "--reporter", "Budi (CV Maju Jaya)", "--contact", "0812-000", "--summary",
              "Tidak bisa unggah penawaran tender 77", "--urgency", "high", "--impact", "several"]  # fmt: skip
    assert main([*base, *report, "--incident", "nope"]) == 1
    assert "no incident 'nope'" in capsys.readouterr().err and not (tmp_path / "helpdesk").exists()
    assert main([*base, *report]) == 0
    rid = capsys.readouterr().out.split(":")[0]
    assert main(["--config", str(cfg), "incidents", "open", "--summary-id", "Unggah gagal", "--message-id", "x"]) == 0
    iid = capsys.readouterr().out.split(":")[0]
    assert main([*base, "link", rid, iid]) == 0
    assert main([*base, "list", "--open"]) == 0 and f"incident: {iid}" in capsys.readouterr().out
    ops = ops_page(settings(prometheus, tmp_path), 1, now=END)
    assert "1 belum dikabari" in ops and "Budi (CV Maju Jaya)" in ops and f'value="{rid}"' in ops
    assert main([*base, "told", rid]) == 0
    assert main([*base, "told", rid]) == 1 and "already answered" in capsys.readouterr().err
    assert main([*base, "list", "--open"]) == 0 and rid not in capsys.readouterr().out
    (r,) = helpdesk.reports(tmp_path / "helpdesk")
    assert (r.reporter, r.urgency, r.impact, r.incident) == ("Budi (CV Maju Jaya)", "high", "several", iid)
    assert r.told is not None and r.told >= r.at


def test_the_json_status_and_the_atom_feed_say_what_the_page_says(prometheus: str, tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    from lpse_status.incidents import open_incident, post_update

    s = dataclasses.replace(settings(prometheus, tmp_path), public_url="https://status.lpse.test/")
    live = open_incident(tmp_path / "incidents", "Login gagal", "Login fails", "minor", ["login"], "Diperiksa", "",
                         "sari", END - 600)  # fmt: skip
    done = open_incident(tmp_path / "incidents", "Unggah gagal", "", "major", ["upload"], "Diperiksa", "", "sari",
                         END - 7200)  # fmt: skip
    post_update(tmp_path / "incidents", done.id, "resolved", "Sudah normal", "", "sari", END - 3600)
    draft = Incident(id="draft", alertname="SpseDown", instance="spse", severity="critical", first_failure=END - 50,
                     alert_start=END - 40, notified=END - 30, resolved=None, recovered=None)  # fmt: skip
    draft.save(tmp_path / "incidents")
    server = Served(s)
    url = f"{server.url}"
    try:
        with urllib.request.urlopen(f"{url}/status.json", timeout=60) as r:
            assert r.headers["Content-Type"] == "application/json"
            data = json.loads(r.read())
        with urllib.request.urlopen(f"{url}/feed.atom", timeout=60) as r:
            assert r.headers["Content-Type"].startswith("application/atom+xml")
            feed = ET.fromstring(r.read())
    finally:
        server.close()
    # The real clock is past the test data's end: SPSE's state is unknown, as on the page.
    assert (data["version"], data["site"], data["state"]) == (1, "LPSE Kota Uji", "unknown")
    assert [i["id"] for i in data["open_incidents"]] == [live.id], "drafts no one announced stay internal"
    assert data["open_incidents"][0]["affects"] == ["login"] and data["open_incidents"][0]["state"] == "investigating"
    assert "by" not in data["open_incidents"][0]["updates"][0], "no staff names in public"
    assert [i["id"] for i in data["recent_incidents"]] == [done.id]
    assert [a["days"] for a in data["availability"]] == [1, 30, 90] and data["availability"][0]["ratio"] is None
    # At the end of the test data: the hand-worked figures (30 min and 20 min down over 3 days).
    at_end = feeds.status_json(s.site_name, s.public_url, s.target, public_now(s, END))
    day, month, _ = at_end["availability"]
    assert at_end["state"] == "up" and day["ratio"] == pytest.approx(1 - 3000 / 86400, abs=2 * STEP / 86400)
    assert month["ratio"] == pytest.approx(1 - 3000 / (END - START), abs=2 * STEP / 86400)
    assert month["measured_since"] == dt.datetime.fromtimestamp(START, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ns = {"a": "http://www.w3.org/2005/Atom"}
    titles = [e.findtext("a:title", namespaces=ns) for e in feed.findall("a:entry", ns)]
    assert titles == ["[Sedang diselidiki] Login gagal", "[Selesai] Unggah gagal"], "newest update first"
    assert "Selesai: Sudah normal" in (feed.findall("a:entry", ns)[1].findtext("a:content", namespaces=ns) or "")


def test_ninety_days_at_a_glance_a_bar_a_day_with_the_minutes_down(prometheus: str, tmp_path: Path) -> None:
    """The test data in WIB: probes from 17-11 12:00 to 20-11 12:00, 30 + 20 minutes down on 20-11
    (the 20 inside a 60-minute maintenance window); a day counts from midnight WIB."""
    s = settings(prometheus, tmp_path)
    save_window(tmp_path / "maintenance", *MAINT)
    page = public_page(s, "id", now=END)
    bars = re.findall(r'<li class="day-(\w+)" id="d-[\d-]+" data-day="([\d-]+)".*?aria-label="([^"]*)"', page)
    assert len(bars) == 90 and bars[-1][1] == "2026-11-20" and bars[0][1] == "2026-08-23"
    assert {b[0] for b in bars[:-4]} == {"none"} and bars[-5][2] == "16-11-2026: belum ada data"
    assert [b[0] for b in bars[-4:]] == ["full", "full", "full", "bad"]
    assert bars[-4][2] == "17-11-2026: 100.00%, 0 menit terganggu"  # measured from the first probe, 12:00
    today = 12 * 3600
    assert bars[-1][2] == f"20-11-2026: {(1 - 3000 / today) * 100:.2f}%, 50 menit terganggu (60 menit pemeliharaan)"
    en = public_page(s, "en", now=END)
    assert "20-11-2026: 93.06%, 50 minutes down (60 minutes of maintenance)" in en and "Last 90 days" in en


def test_a_months_figure_is_recomputed_from_its_open_data_file_alone(prometheus: str, tmp_path: Path) -> None:
    """R17: the page's monthly figure links to the month's probe results; counting the CSV's rows
    by the rule in its JSON gives the same figure, the digest checks, the site's key signed it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from lpse_status.web import write_open_data

    key = tmp_path / "open-data.key"
    key.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))  # fmt: skip
    s = dataclasses.replace(settings(prometheus, tmp_path), signing_key=key)
    save_window(tmp_path / "maintenance", *MAINT)
    december = dt.datetime(2026, 12, 2, tzinfo=dt.timezone(dt.timedelta(hours=7))).timestamp()
    assert write_open_data(s, END) == [], "November has not ended yet"
    assert write_open_data(s, december) == ["2026-11"]
    assert write_open_data(s, december) == [], "a month is written once"
    folder = tmp_path / "open-data"

    # Recomputed here from the two files alone, by the rule the JSON states.
    meta = json.loads((folder / "ketersediaan-2026-11.json").read_text())
    rows = list(csv.DictReader((folder / "ketersediaan-2026-11.csv").open()))
    start, end, step = meta["start_epoch_seconds"], meta["end_epoch_seconds"], meta["step_seconds"]
    begin = max(start, min(float(r["epoch_seconds"]) for r in rows))
    up = [float(r["epoch_seconds"]) for r in rows if begin < float(r["epoch_seconds"]) <= end and r["up"] == "1"]
    recomputed = min(1.0, len(up) / ((end - begin) / step))
    assert meta["figures"]["availability"] == pytest.approx(recomputed, abs=1e-12)
    assert "step_seconds" in meta["rule_en"] and meta["maintenance_windows"] == [
        {"start_epoch_seconds": MAINT[0], "end_epoch_seconds": MAINT[1]}
    ]
    # The same figure as the page's other figures give it (PromQL over the same month).
    by_prometheus = availability(Prometheus(prometheus), "spse", start, end, STEP)
    assert by_prometheus is not None and by_prometheus.up_share == pytest.approx(recomputed, abs=1e-9)
    page = public_page(s, "id", now=december)
    assert f'<tr data-month="2026-11"><td>2026-11</td><td class=pct>{recomputed * 100:.2f}%</td>' in page
    assert 'href="/data/ketersediaan-2026-11.csv"' in page and 'href="/data/kunci-publik.pem"' in page

    # The digest and the signature, checked with the tools anyone has.
    subprocess.run(["sha256sum", "-c", "ketersediaan-2026-11.sha256"], cwd=folder, check=True, capture_output=True)
    verify = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "kunci-publik.pem", "-rawin", "-in",
              "ketersediaan-2026-11.sha256", "-sigfile", "ketersediaan-2026-11.sha256.sig"]  # fmt: skip
    assert (
        "Signature Verified Successfully" in subprocess.run(verify, cwd=folder, capture_output=True, text=True).stdout
    )
    with (folder / "ketersediaan-2026-11.csv").open("a") as f:
        f.write("2026-11-30T00:00:00.00Z,1795971600.000,1\n")
    assert subprocess.run(
        ["sha256sum", "-c", "ketersediaan-2026-11.sha256"], cwd=folder, capture_output=True
    ).returncode
    # Served by the board, and nothing else from that folder.
    server = Served(s)
    url = f"{server.url}/data"
    try:
        with urllib.request.urlopen(f"{url}/kunci-publik.pem", timeout=30) as r:
            assert r.read().startswith(b"-----BEGIN PUBLIC KEY-----")
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{url}/../config.toml", timeout=30)
    finally:
        server.close()


def test_the_berita_acara_names_the_tenders_the_outage_touched_to_the_second(
    prometheus: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The 30-minute outage: the certificate says when it started and ended to the second (the
    first failed and the first good probe result), names exactly A1 (closed in it) and B2 (upload
    open across it), carries the evidence with its digest, keeps its number; the PDF reads back."""
    import hashlib

    from lpse_status.__main__ import main

    cfg = tmp_path / "config.toml"
    cfg.write_text(f'prometheus_url = "{prometheus}"\nsite_name = "LPSE Kota Uji"\nspse_instance = "spse"\n'
                   f'records_dir = "{tmp_path}"\npublic_url = "https://status.lpse.test/"\n[berita_acara]\n'
                   'place = "Kota Uji"\nhead_name = "Budi Santoso"\nhead_nip = "19800101 200501 1 001"\n')  # fmt: skip
    Incident(id="outage", alertname="SpseDown", instance="spse", severity="critical", first_failure=OUTAGE[0],
             alert_start=OUTAGE[0] + 20, notified=OUTAGE[0] + 25, resolved=OUTAGE[1] + 10, recovered=OUTAGE[1],
             cause_id="Disk penuh", actions=["Log dihapus"]).save(tmp_path / "incidents")  # fmt: skip
    out = tmp_path / "ba"
    assert main(["--config", str(cfg), "berita-acara", "nope", "--out", str(out)]) == 1
    assert "no incident 'nope'" in capsys.readouterr().err
    assert main(["--config", str(cfg), "berita-acara", "outage", "--out", str(out)]) == 0
    number = capsys.readouterr().out.split(":")[0]
    assert re.fullmatch(r"001/BA-GANGGUAN/LPSE/[IVX]+/20\d\d", number), number
    cert = json.loads((out / "berita-acara-outage.json").read_text())
    assert (cert["start"], cert["end"], cert["days"]) == (OUTAGE[0], OUTAGE[1], ["2026-11-20"])
    assert [(s["tender"], s["why"]) for s in cert["stages"]] == [
        ("A1", "ditutup selama gangguan"), ("B2", "unggah penawaran sedang dibuka")]  # fmt: skip
    html = (out / "berita-acara-outage.html").read_text()
    assert "<span id=mulai>20 November 2026 pukul 06:00:00 WIB</span>" in html
    assert "<span id=selesai>20 November 2026 pukul 06:30:00 WIB</span>" in html and "30 menit 0 detik" in html
    assert "Jumat, 20 November 2026" in html and "Disk penuh" in html and "Budi Santoso" in html
    assert "C3" not in html and "D4" not in html and "E5" not in html
    # The evidence: the raw probe results and the queries give the digest printed in the document.
    evidence = (out / "berita-acara-outage.csv").read_text()
    digest = hashlib.sha256((evidence + "\n".join(cert["queries"]) + "\n").encode()).hexdigest()
    assert f"<span id=digest>{digest}</span>" in html
    zeros = [float(r.split(",")[1]) for r in evidence.splitlines()[1:] if r.endswith(",0")]
    assert (min(zeros), max(zeros) + STEP) == (OUTAGE[0], OUTAGE[1])
    text = subprocess.run(["pdftotext", "-layout", str(out / "berita-acara-outage.pdf"), "-"], capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    assert "BERITA ACARA GANGGUAN" in text and f"Nomor: {number}" in text and "06:00:00 WIB" in text
    assert re.search(r"1 +A1 ", text) and re.search(r"2 +B2 ", text) and "C3" not in text  # the tenders' table
    # Issued again: the same number; another incident: the next one.
    assert main(["--config", str(cfg), "berita-acara", "outage", "--out", str(out), "--html-only"]) == 0
    assert capsys.readouterr().out.split(":")[0] == number
    Incident(id="second", alertname="SpseDown", instance="spse", severity="critical", first_failure=MAINT_DOWN[0],
             alert_start=MAINT_DOWN[0] + 20, notified=None, resolved=MAINT_DOWN[1] + 10,
             recovered=MAINT_DOWN[1]).save(tmp_path / "incidents")  # fmt: skip
    assert main(["--config", str(cfg), "berita-acara", "second", "--out", str(out), "--html-only"]) == 0
    assert capsys.readouterr().out.startswith("002/BA-GANGGUAN/LPSE/")


def test_escalation_packs_the_timeline_the_berita_acara_and_the_bundle_and_mails_lkpp(
    prometheus: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """R15, through a real SMTP server on this machine (the lab test goes through the lab's relay):
    one archive, one mail to LKPP's contact with it attached; a dead relay keeps the archive."""
    import email
    import email.policy
    import tarfile

    from aiosmtpd.controller import Controller
    from lpse_status.__main__ import main

    received: list[bytes] = []

    class Inbox:
        async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:  # noqa: N802
            received.append(envelope.content)
            return "250 OK"

    port = free_port()
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'prometheus_url = "{prometheus}"\nsite_name = "LPSE Kota Uji"\nspse_instance = "spse"\n'
                   f'records_dir = "{tmp_path}"\n[notices]\nlkpp_to = "lkpp@lkpp.test"\nrelay = "127.0.0.1:{port}"\n'
                   'from = "status@lpse.test"\nrequire_tls = false\n')  # fmt: skip
    Incident(id="outage", alertname="SpseDown", instance="spse", severity="critical", first_failure=OUTAGE[0],
             alert_start=OUTAGE[0] + 20, notified=OUTAGE[0] + 25, resolved=OUTAGE[1] + 10, recovered=OUTAGE[1],
             summary_id="SPSE tidak dapat diakses").save(tmp_path / "incidents")  # fmt: skip
    bundle = tmp_path / "lpse-diagnose-spse-20261120T000000Z.tar.gz"
    bundle.write_bytes(b"diagnose bundle")
    args = ["--config", str(cfg), "escalate", "outage", "--attach", str(bundle), "--out", str(tmp_path / "esc")]
    assert main(args) == 1, "the relay is down"
    assert "the archive is at" in capsys.readouterr().err and (tmp_path / "esc/eskalasi-outage.tar.gz").exists()
    relay = Controller(Inbox(), hostname="127.0.0.1", port=port)
    relay.start()
    try:
        assert main(args) == 0
    finally:
        relay.stop()
    assert "Berita Acara Gangguan 001/BA-GANGGUAN" in capsys.readouterr().out
    (raw,) = received
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert (
        msg["To"] == "lkpp@lkpp.test" and "Eskalasi gangguan SPSE ke LKPP: SPSE tidak dapat diakses" in msg["Subject"]
    )
    (part,) = [p for p in msg.iter_attachments()]
    assert part.get_filename() == "eskalasi-outage.tar.gz"
    (tmp_path / "got.tar.gz").write_bytes(part.get_content())
    with tarfile.open(tmp_path / "got.tar.gz") as tar:
        names = {Path(n).name for n in tar.getnames()}
    assert {"gangguan.json", "kronologi.html", "berita-acara-outage.pdf", "berita-acara-outage.csv",
            bundle.name} <= names  # fmt: skip
