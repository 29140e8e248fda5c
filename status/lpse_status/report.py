"""The quarterly report (R16, R17) in Bahasa Indonesia (English beside the headings): SPSE
availability against the target, incidents and their causes, maintenance windows, capacity
with the days until each disk is full, backup and restore-drill compliance, and LKPP's use of
its read access. Figures come from Prometheus, the records and nginx's LKPP log; the HTML is the
report, and the PDF is the same HTML printed by WeasyPrint.

    lpse-status report --quarter 2026Q4 --out /var/lib/lpse-ops/reports
"""

from __future__ import annotations

import datetime as dt
import gzip
import re
import time
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from lpse_status.availability import Availability, availability
from lpse_status.maintenance import Maintenance, maintenance_windows
from lpse_status.prom import Prometheus
from lpse_status.records import Incident, Visit, incidents, visits
from lpse_status.svg import line_chart

MONTHS = (
    "Januari",
    "Februari",
    "Maret",
    "April",
    "Mei",
    "Juni",
    "Juli",
    "Agustus",
    "September",
    "Oktober",
    "November",
    "Desember",
)
ROMAN = ("I", "II", "III", "IV")


@dataclass(frozen=True)
class Quarter:
    year: int
    number: int  # 1..4
    tz: dt.tzinfo

    @classmethod
    def parse(cls, text: str, tz: dt.tzinfo) -> Quarter:
        m = re.fullmatch(r"(\d{4})-?[Qq]([1-4])", text.strip())
        if not m:
            raise ValueError(f"--quarter {text!r}: write it as 2026Q4 (year, Q, 1 to 4)")
        return cls(int(m[1]), int(m[2]), tz)

    @property
    def start(self) -> float:
        return dt.datetime(self.year, 3 * self.number - 2, 1, tzinfo=self.tz).timestamp()

    @property
    def end(self) -> float:
        y, m = (self.year + 1, 1) if self.number == 4 else (self.year, 3 * self.number + 1)
        return dt.datetime(y, m, 1, tzinfo=self.tz).timestamp()

    def months(self) -> list[tuple[str, float, float]]:
        out = []
        for k in range(3):
            m = 3 * self.number - 2 + k
            a = dt.datetime(self.year, m, 1, tzinfo=self.tz)
            b = dt.datetime(self.year + (m == 12), m % 12 + 1, 1, tzinfo=self.tz)
            out.append((MONTHS[m - 1], a.timestamp(), b.timestamp()))
        return out

    @property
    def title(self) -> str:
        return f"Triwulan {ROMAN[self.number - 1]} {self.year}"


@dataclass(frozen=True)
class Disk:
    instance: str
    mountpoint: str
    size: float
    avail: float
    growth_per_day: float  # bytes/day, from the last 7 days (negative: shrinking)

    @property
    def days_to_full(self) -> float | None:
        return self.avail / self.growth_per_day if self.growth_per_day > 0 else None


@dataclass(frozen=True)
class BackupCompliance:
    dataset: str
    target: str
    days_with_copy: int
    days_measured: int
    last_success: float | None


@dataclass
class LkppAccess:
    login: str
    requests: int = 0
    days: set[str] = field(default_factory=set)
    refused: int = 0  # 4xx answers (paths outside the read API)


@dataclass(frozen=True)
class Power:
    """One UPS over the period (R4): time on battery, how often mains was lost, how often the
    battery reached the site's shutdown threshold (a clean shutdown of the hosts on it)."""

    ups: str
    on_battery_s: float
    mains_lost: int
    battery_low: int


@dataclass
class Report:
    site: str
    quarter: Quarter
    until: float  # the end of the period covered (the quarter's end, or now while it runs)
    generated: float
    target: float
    overall: Availability | None
    monthly: list[tuple[str, Availability | None]]
    incidents: list[Incident]
    maintenance: list[Maintenance]
    disks: list[Disk]
    disk_chart: str
    ram_peak: dict[str, float]
    uplink_p95: dict[str, tuple[float, float | None]]  # interface -> (bits/s p95, contracted bits/s)
    backups: list[BackupCompliance]
    drills: dict[str, tuple[int, float | None]]  # target -> (drills passed, longest database RTO s)
    lkpp: list[LkppAccess]
    lkpp_failed_logins: int
    visits: list[Visit] = field(default_factory=list)  # server-room visits during the quarter (R4)
    power: list[Power] = field(default_factory=list)
    hottest_hour: tuple[float, float] | None = None  # (room °C averaged over the hour, the hour's end)


def _days(values: list[float], start: float, end: float, tz: dt.tzinfo) -> set[str]:
    return {dt.datetime.fromtimestamp(v, tz).strftime("%Y-%m-%d") for v in values if start <= v < end}


def backup_compliance(
    prom: Prometheus, start: float, end: float, instance: str, tz: dt.tzinfo
) -> list[BackupCompliance]:
    """Per dataset and target: the days of the period on which a copy succeeded (the distinct
    success times the job reported), out of the days the job was watched."""
    step = 3600.0
    out = []
    series = prom.query_range(f'lpse_backup_last_success_timestamp_seconds{{instance="{instance}"}}', start, end, step)
    for x in series:
        values = sorted({v for _, v in x.points})
        first = x.points[0][0] if x.points else end
        measured = max(1, round((end - max(start, first)) / 86400))
        copies = _days(values, start, end, tz)
        last = max((v for v in values if v < end), default=None)
        out.append(
            BackupCompliance(x.labels.get("dataset", "?"), x.labels.get("target", "?"), len(copies), measured, last)
        )
    return sorted(out, key=lambda b: (b.dataset, b.target))


def drills(prom: Prometheus, start: float, end: float, instance: str) -> dict[str, tuple[int, float | None]]:
    out: dict[str, tuple[int, float | None]] = {}
    ok = prom.query_range(
        f'lpse_backup_drill_last_success_timestamp_seconds{{instance="{instance}",dataset="database"}}',
        start,
        end,
        3600,
    )
    rto = prom.query_range(
        f'lpse_backup_drill_last_run_duration_seconds{{instance="{instance}",dataset="database"}}', start, end, 3600
    )
    longest = {x.labels.get("target", "?"): max(v for _, v in x.points) for x in rto if x.points}
    for x in ok:
        passed = {v for _, v in x.points if start <= v < end}
        target = x.labels.get("target", "?")
        out[target] = (len(passed), longest.get(target))
    return out


LKPP_LINE = re.compile(r'^\S+ - (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" (?P<status>\d{3}) ')


def lkpp_access(logs: list[Path], start: float, end: float, tz: dt.tzinfo) -> tuple[list[LkppAccess], int]:
    """LKPP's requests per login from nginx's LKPP log (rotated and gzipped files too)."""
    per: dict[str, LkppAccess] = {}
    failed = 0
    for path in logs:
        opener = gzip.open if path.suffix == ".gz" else open
        try:
            with opener(path, "rt", errors="replace") as f:  # type: ignore[operator]
                lines = f.readlines()
        except OSError:
            continue
        for line in lines:
            m = LKPP_LINE.match(line)
            if not m:
                continue
            when = dt.datetime.strptime(m["time"], "%d/%b/%Y:%H:%M:%S %z").timestamp()
            if not start <= when < end:
                continue
            if m["user"] == "-" or m["status"] == "401":
                failed += 1
                continue
            acc = per.setdefault(m["user"], LkppAccess(m["user"]))
            acc.requests += 1
            acc.days.add(dt.datetime.fromtimestamp(when, tz).strftime("%Y-%m-%d"))
            acc.refused += m["status"].startswith("4")
    return sorted(per.values(), key=lambda a: a.login), failed


def power(prom: Prometheus, start: float, until: float, step: float) -> list[Power]:
    """Per UPS, from its status flags at the scrape step: seconds on battery, and the rises of
    OB (mains lost) and of LB (the battery at the shutdown threshold)."""
    w, s = f"{max(60, int(until - start))}s", f"{int(step)}s"

    def per_ups(expr: str) -> dict[str, float]:
        return {x.labels.get("ups", ""): x.points[0][1] for x in prom.query(expr, at=until)}

    def rises(flag: str) -> dict[str, float]:
        sel = f'lpse_ups_status{{flag="{flag}"}}'
        return per_ups(f"sum by (ups) (sum_over_time((({sel} - ({sel} offset {s})) > 0)[{w}:{s}]))")

    on_battery = per_ups(f'sum by (ups) (sum_over_time(lpse_ups_status{{flag="OB"}}[{w}:{s}])) * {step}')
    lost, low = rises("OB"), rises("LB")
    return [Power(u, on_battery[u], int(lost.get(u, 0)), int(low.get(u, 0))) for u in sorted(on_battery)]


def hottest_hour(prom: Prometheus, start: float, until: float) -> tuple[float, float] | None:
    """The server room's hottest hour (the room sensor averaged over each hour), and its end."""
    series = prom.query_range(
        'max(avg_over_time(lpse_temperature_celsius{chip="room"}[1h]))', start + 3600, until, 3600
    )
    points = [p for x in series for p in x.points]
    if not points:
        return None
    at, celsius = max(points, key=lambda p: p[1])
    return celsius, at


def build(
    prom: Prometheus,
    site: str,
    instance: str,
    quarter: Quarter,
    records: Path,
    lkpp_logs: list[Path],
    target: float,
    step: float,
    now: float | None = None,
) -> Report:
    now = now or time.time()
    start, until = quarter.start, min(quarter.end, now)
    windows = [m for m in maintenance_windows(records / "maintenance") if m.end > start and m.start < until]
    spans = [(m.start, m.end) for m in windows]
    monthly = [
        (name, availability(prom, instance, a, min(b, until), step, spans) if a < until else None)
        for name, a, b in quarter.months()
    ]
    disks = []
    for x in prom.query("lpse_filesystem_avail_bytes", at=until):
        lab = x.labels
        sel = f'instance="{lab.get("instance", "")}",mountpoint="{lab.get("mountpoint", "")}"'
        size = prom.value(f"lpse_filesystem_size_bytes{{{sel}}}", at=until, default=0.0) or 0.0
        growth = prom.value(f"-deriv(lpse_filesystem_avail_bytes{{{sel}}}[7d]) * 86400", at=until, default=0.0)
        disks.append(Disk(lab.get("instance", ""), lab.get("mountpoint", ""), size, x.points[0][1], growth or 0.0))
    chart_step = max(step, (until - start) / 300)
    used = prom.query_range(
        "100 * (1 - lpse_filesystem_avail_bytes / lpse_filesystem_size_bytes)", start, until, chart_step
    )
    chart = line_chart(
        "Disk terpakai / disk used",
        [(f"{u.labels.get('instance')} {u.labels.get('mountpoint')}", u.points) for u in used],
        "%",
        0,
        100,
    )
    width = f"{max(60, int(until - start))}s"
    ram = {
        x.labels.get("instance", ""): x.points[0][1]
        for x in prom.query(
            f"max_over_time((1 - lpse_memory_available_bytes / lpse_memory_total_bytes)[{width}:5m])", at=until
        )
    }
    p95 = prom.query(
        f"quantile_over_time(0.95, (8 * rate(lpse_network_transmit_bytes_total[5m]))[{width}:5m])", at=until
    )
    uplinks: dict[str, tuple[float, float | None]] = {}
    for x in p95:
        sel = f'instance="{x.labels.get("instance", "")}",interface="{x.labels.get("interface", "")}"'
        contracted = prom.value(f"8 * lpse_network_contracted_bandwidth_bytes{{{sel}}}", at=until)
        if contracted is not None or x.labels.get("instance") == instance:
            uplinks[f"{x.labels.get('instance')} {x.labels.get('interface')}"] = (x.points[0][1], contracted)
    lkpp, failed = lkpp_access(lkpp_logs, start, until, quarter.tz)
    return Report(
        site=site,
        quarter=quarter,
        until=until,
        generated=now,
        target=target,
        overall=availability(prom, instance, start, until, step, spans),
        monthly=monthly,
        incidents=[i for i in incidents(records / "incidents") if start <= i.first_failure < until],
        maintenance=windows,
        disks=sorted(disks, key=lambda d: (d.instance, d.mountpoint)),
        disk_chart=chart,
        ram_peak=ram,
        uplink_p95=uplinks,
        backups=backup_compliance(prom, start, until, instance, quarter.tz),
        drills=drills(prom, start, until, instance),
        lkpp=lkpp,
        lkpp_failed_logins=failed,
        visits=[v for v in visits(records / "visits") if v.entered < until and (v.left is None or v.left >= start)],
        power=power(prom, start, until, step),
        hottest_hour=hottest_hour(prom, start, until),
    )


def _d(ts: float | None, tz: dt.tzinfo) -> str:
    return dt.datetime.fromtimestamp(ts, tz).strftime("%d-%m-%Y %H:%M") if ts else "-"


def _gaps(a: Availability | None, tz: dt.tzinfo) -> str:
    """What a figure leaves out or counts down for lack of data, said beside it."""
    if a is None:
        return "tidak ada data / no data"
    notes = [f"diukur sejak / measured since {_d(a.measured_from, tz)}"] if a.measured_from > a.start + 60 else []
    if a.missing_s >= 60:
        notes.append(f"{a.missing_s / 60:.0f} menit tanpa data, dihitung terganggu / min. without data, counted down")
    return "; ".join(notes) or "-"


def _pct(a: Availability | None) -> str:
    return f"{a.up_share * 100:.2f}%" if a else "tidak ada data"


def _table(table_id: str, headers: list[str], rows: list[list[str]], empty: str) -> str:
    """One of the report's tables (cells already escaped), or the sentence that says it is empty."""
    if not rows:
        return f"<p>{empty}</p>"
    head = "".join(f"<th>{h}</th>" for h in headers)
    return (
        f"<table id={table_id}><tr>{head}</tr>"
        + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
        + "</table>"
    )


def _minutes(seconds: float) -> str:
    m = round(seconds / 60)
    return f"{m // 60} jam {m % 60} menit" if m >= 60 else f"{m} menit"


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def render_html(r: Report) -> str:
    tz = r.quarter.tz
    q = r.quarter
    met = r.overall is not None and r.overall.excluding_maintenance >= r.target
    parts = [
        '<!doctype html><html lang="id"><head><meta charset="utf-8">'
        f"<title>Laporan {q.title} — {escape(r.site)}</title>"
        "<style>body{font-family:sans-serif;max-width:820px;margin:auto;font-size:11pt}"
        "td,th{padding:.25em .5em;border-bottom:1px solid #ccc;text-align:left;vertical-align:top}"
        "h2{border-bottom:2px solid #1b6ac9;margin-top:1.4em}.en{color:#666;font-weight:normal;font-size:.85em}"
        "@page{size:A4;margin:18mm}</style></head><body>",
        f"<h1>Laporan Operasional SPSE {q.title}</h1>",
        f"<p>{escape(r.site)} — periode {_d(q.start, tz)} s.d. {_d(r.until, tz)}"
        + (" (triwulan belum selesai)" if r.until < q.end else "")
        + f"<br>Dibuat / generated {_d(r.generated, tz)}</p>",
        '<h2>1. Ketersediaan SPSE <span class="en">SPSE availability</span></h2>',
    ]
    if r.overall is None:
        parts.append("<p>Tidak ada data pemantauan pada periode ini.</p>")
    else:
        o = r.overall
        parts.append(
            f'<table id="availability"><tr><th>Ketersediaan / availability</th><td id="overall">{_pct(o)}</td></tr>'
            f"<tr><th>Di luar pemeliharaan terjadwal / excluding announced maintenance</th>"
            f'<td id="overall-excl">{o.excluding_maintenance * 100:.2f}%</td></tr>'
            f"<tr><th>Target</th><td>{r.target * 100:.2f}% — "
            f"{'tercapai / met' if met else 'TIDAK tercapai / not met'}</td></tr>"
            f'<tr><th>Total waktu terganggu / downtime</th><td id="downtime">{o.down_s / 60:.0f} menit</td></tr>'
            + (
                f"<tr><th>Diukur sejak / measured since</th><td>{_d(o.measured_from, tz)}</td></tr>"
                if o.measured_from > o.start + 60
                else ""
            )
            + (
                f'<tr><th>Tanpa data, dihitung terganggu / no data, counted down</th><td id="missing">'
                f"{o.missing_s / 60:.0f} menit</td></tr>"
                if o.missing_s >= 60
                else ""
            )
            + "</table><table id=monthly><tr><th>Bulan / month</th><th>Ketersediaan</th><th>Catatan / note</th></tr>"
            + "".join(f"<tr><td>{m}</td><td>{_pct(a)}</td><td>{_gaps(a, tz)}</td></tr>" for m, a in r.monthly)
            + "</table>"
        )
    parts.append('<h2>2. Gangguan <span class="en">Incidents</span></h2>')
    incident_rows = [
        [_d(i.first_failure, tz), f"{i.duration_s / 60:.0f} menit" if i.duration_s is not None else "berlangsung",
         f"{escape(i.alertname)} ({escape(i.instance)})", escape(i.cause_id or "belum dijelaskan")]
        for i in sorted(r.incidents, key=lambda i: i.first_failure)
    ]  # fmt: skip
    parts.append(
        _table("incidents", ["Mulai", "Durasi", "Alert", "Penyebab / cause"], incident_rows,
               "Tidak ada gangguan kritis tercatat.")
    )  # fmt: skip
    parts.append('<h2>3. Pemeliharaan <span class="en">Maintenance windows</span></h2>')
    if not r.maintenance:
        parts.append("<p>Tidak ada pemeliharaan terjadwal.</p>")
    else:
        parts.append("<table id=maintenance><tr><th>Mulai</th><th>Selesai</th><th>Alasan</th></tr>")
        for m in r.maintenance:
            forced = " (di masa penutupan tender, dipaksakan)" if m.forced else ""
            parts.append(
                f"<tr><td>{_d(m.start, tz)}</td><td>{_d(m.end, tz)}</td><td>{escape(m.reason_id)}{forced}</td></tr>"
            )
        parts.append("</table>")
    parts.append(
        '<h2>4. Kapasitas <span class="en">Capacity</span></h2><table id=disks><tr><th>Host</th><th>Disk</th>'
        "<th>Terpakai</th><th>Sisa</th><th>Pertumbuhan/hari</th><th>Perkiraan penuh</th></tr>"
    )
    for d in r.disks:
        full = f"{d.days_to_full:.0f} hari lagi" if d.days_to_full is not None else "tidak bertambah"
        used = 100 * (1 - d.avail / d.size) if d.size else 0
        parts.append(
            f"<tr><td>{escape(d.instance)}</td><td>{escape(d.mountpoint)}</td><td>{used:.0f}%</td>"
            f"<td>{_gib(d.avail)}</td><td>{d.growth_per_day / 2**20:.1f} MiB</td><td>{full}</td></tr>"
        )
    parts.append("</table>" + r.disk_chart)
    parts.append(
        "<table><tr><th>Host</th><th>RAM terpakai tertinggi / peak RAM use</th></tr>"
        + "".join(f"<tr><td>{escape(h)}</td><td>{v * 100:.0f}%</td></tr>" for h, v in sorted(r.ram_peak.items()))
        + "</table>"
    )
    if r.uplink_p95:
        parts.append(
            "<table id=uplink><tr><th>Uplink</th><th>Persentil 95 keluar / p95 outbound</th><th>Kontrak</th></tr>"
        )
        for name, (p95, contracted) in sorted(r.uplink_p95.items()):
            c = f"{contracted / 1e6:.0f} Mbit/s ({100 * p95 / contracted:.0f}%)" if contracted else "-"
            parts.append(f"<tr><td>{escape(name)}</td><td>{p95 / 1e6:.2f} Mbit/s</td><td>{c}</td></tr>")
        parts.append("</table>")
    parts.append(
        '<h2>5. Backup dan uji pemulihan <span class="en">Backups and restore drills</span></h2>'
        "<table id=backups><tr><th>Data</th><th>Tujuan</th><th>Hari dengan backup berhasil</th><th>Terakhir</th></tr>"
    )
    for b in r.backups:
        parts.append(
            f"<tr><td>{escape(b.dataset)}</td><td>{escape(b.target)}</td>"
            f"<td>{b.days_with_copy} dari {b.days_measured} hari ({100 * b.days_with_copy / b.days_measured:.0f}%)</td>"
            f"<td>{_d(b.last_success, tz)}</td></tr>"
        )
    parts.append("</table>")
    if not r.backups:
        parts.append("<p>Tidak ada data backup pada periode ini.</p>")
    parts.append(
        "<table id=drills><tr><th>Uji pemulihan dari / drill from</th><th>Berhasil</th>"
        "<th>Waktu pulih terlama (RTO)</th></tr>"
        + "".join(
            f"<tr><td>{escape(t)}</td><td>{n} kali</td><td>{f'{rto:.0f} detik' if rto else '-'}</td></tr>"
            for t, (n, rto) in sorted(r.drills.items())
        )
        + "</table>"
    )
    parts.append('<h2>6. Akses LKPP <span class="en">LKPP access</span></h2>')
    parts.append(
        _table("lkpp", ["Login", "Permintaan", "Hari", "Ditolak (di luar API baca)"],
               [[escape(a.login), str(a.requests), str(len(a.days)), str(a.refused)] for a in r.lkpp],
               "LKPP tidak mengakses pemantauan pada periode ini.")
    )  # fmt: skip
    parts.append(f"<p>Login gagal / failed logins: <span id=lkpp-failed>{r.lkpp_failed_logins}</span></p>")
    parts.append('<h2>7. Kunjungan ruang server <span class="en">Server-room visits</span></h2>')
    visit_rows = [
        [_d(v.entered, tz), _d(v.left, tz) if v.left else "<b>masih di dalam / still inside</b>",
         escape(v.visitor) + (f" ({escape(v.organisation)})" if v.organisation else ""), escape(v.purpose),
         escape(v.allowed_by), escape(v.escort) or "-"]
        for v in r.visits
    ]  # fmt: skip
    parts.append(
        _table("visits", ["Masuk", "Keluar", "Pengunjung", "Keperluan", "Diizinkan oleh", "Pendamping"], visit_rows,
               "Tidak ada kunjungan ruang server yang tercatat. <span class=en>No visits recorded.</span>")
        + (f"<p>{len(r.visits)} kunjungan / visits.</p>" if r.visits else "")
    )  # fmt: skip
    parts.append('<h2>8. Daya dan suhu ruang server <span class="en">Power and server-room temperature</span></h2>')
    parts.append(
        _table("power", ["UPS", "Waktu dengan baterai", "Listrik PLN padam", "Baterai mencapai batas (shutdown)"],
               [[escape(pw.ups), _minutes(pw.on_battery_s), f"{pw.mains_lost} kali", f"{pw.battery_low} kali"]
                for pw in r.power],
               "Tidak ada UPS yang dipantau. <span class=en>No UPS is monitored.</span>")
    )  # fmt: skip
    if r.hottest_hour is None:
        parts.append("<p>Tidak ada sensor suhu ruangan. <span class=en>No room temperature sensor.</span></p>")
    else:
        celsius, end = r.hottest_hour
        parts.append(
            f"<p>Jam terpanas / hottest hour: <span id=hottest>{celsius:.1f} °C</span> "
            f"({_d(end - 3600, tz)} – {dt.datetime.fromtimestamp(end, tz):%H:%M})</p>"
        )
    parts.append(
        "<p><small>Ketersediaan = hasil probe halaman SPSE yang menyatakan berjalan dibagi jumlah langkah "
        "pengambilan data; langkah tanpa hasil dihitung terganggu sejak detik pertamanya, kecuali sebelum hasil "
        'probe pertama situs (dicatat "diukur sejak"). Availability = probe results that said up over the '
        "probe steps; a step without a result counts as down from its first second, except before the site's "
        'first probe result (noted as "measured since").</small></p>'
        "</body></html>"
    )
    return "".join(parts)


def write_pdf(html: str, path: Path) -> None:
    """Print the HTML to PDF with WeasyPrint (installed with lpse-status[report])."""
    try:
        from weasyprint import HTML  # type: ignore[import-not-found]
    except ImportError as e:  # also raised when Pango is missing
        raise RuntimeError(f"cannot print the PDF: {e}. Install lpse-status[report] and Debian's libpango-1.0-0") from e
    tmp = path.with_name(f".{path.name}.tmp")
    HTML(string=html).write_pdf(str(tmp))
    tmp.replace(path)


def lkpp_logs(folder: Path = Path("/var/log/nginx")) -> list[Path]:
    return sorted(folder.glob("lkpp-access.log*"))
