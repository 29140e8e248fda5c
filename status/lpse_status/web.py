"""The status board's pages. It listens on localhost only: nginx in front gives it TLS and asks
for the login on /ops (roles/status_board).

  /            public status in Bahasa Indonesia (?lang=en for English): SPSE up or down now,
               the maintenance notice, uptime for 24 h / 30 d / 90 d, past incidents explained
  /ops         internal view: disk, RAM, bandwidth and SPSE graphs of every host (?hours=N)
  /healthz     200 when Prometheus answers
  POST /alertmanager   Alertmanager's webhook: critical notifications open and close incident drafts
                       (localhost only: nginx does not pass it on)

Beside the pages, a power-off in a UPS's timeline becomes an incident once its host is back
(lpse_status.power, checked every minute).
"""

from __future__ import annotations

import datetime as dt
import functools
import hmac
import json
import logging
import threading
import time
import tomllib
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from http import HTTPStatus
from pathlib import Path
from typing import Any

from lpse_status import feeds, helpdesk, opendata, public
from lpse_status.availability import Availability, Day, availability, daily, first_probe
from lpse_status.berita_acara import Office
from lpse_status.incidents import AFFECTS, SEVERITIES, STATES, on_notification, open_incident, post_update
from lpse_status.maintenance import Maintenance, maintenance_windows, site_zone
from lpse_status.notices import Board, MailSettings, deliver, incident_updated
from lpse_status.opendata import completed_months, load_key
from lpse_status.power import record_power_cuts
from lpse_status.prom import Prometheus, PrometheusError
from lpse_status.public import local_time as _when
from lpse_status.records import Incident, Visit, enter, incidents, leave, visits
from lpse_status.svg import line_chart

log = logging.getLogger("lpse_status")
WIB = dt.timezone(dt.timedelta(hours=7), "WIB")


@dataclass(frozen=True)
class Settings:
    prometheus_url: str
    site_name: str
    spse_instance: str
    records_dir: Path
    step_s: float = 10
    listen: str = "127.0.0.1"
    port: int = 9180
    target: float = 0.995  # the availability the LPSE promises (shown beside the figures)
    timezone: dt.tzinfo = WIB
    webhook_token: str = ""  # Alertmanager's bearer token; empty: the webhook refuses everything
    public_url: str = ""  # the public page's address, as notices and the feed give it
    signing_key: Path = Path("/etc/lpse-status/open-data.key")  # signs the open-data files (Ed25519)
    office: Office = field(default_factory=lambda: Office("LPSE"))  # who issues the Berita Acara Gangguan
    mail: MailSettings = field(default_factory=MailSettings)

    @property
    def board(self) -> Board:
        return Board(self.records_dir, self.mail, self.site_name, self.public_url, self.timezone)

    @classmethod
    def load(cls, path: Path) -> Settings:
        d = tomllib.loads(path.read_text())
        return cls(
            prometheus_url=d["prometheus_url"],
            site_name=d["site_name"],
            spse_instance=d["spse_instance"],
            records_dir=Path(d["records_dir"]),
            step_s=float(d.get("step_seconds", 10)),
            listen=d.get("listen", "127.0.0.1"),
            port=int(d.get("port", 9180)),
            target=float(d.get("availability_target", 0.995)),
            timezone=site_zone(float(d.get("utc_offset_hours", 7))),
            webhook_token=str(d.get("webhook_token", "")),
            public_url=str(d.get("public_url", "")),
            signing_key=Path(d.get("signing_key", "/etc/lpse-status/open-data.key")),
            office=Office.from_dict(d.get("berita_acara", {}), d["site_name"]),
            mail=MailSettings.from_dict(d.get("notices", {})),
        )


STYLE = """
body{font-family:system-ui,sans-serif;max-width:820px;margin:0 auto;padding:1em;color:#222}
.banner{padding:1em 1.2em;border-radius:6px;color:#fff;font-size:1.4em;font-weight:bold}
.state-up{background:#2b8a3e}.state-down{background:#c92a2a}.state-maintenance{background:#e67700}
.state-unknown{background:#495057}.notice{border-left:6px solid #e67700;padding:.6em 1em;background:#fff4e6}
table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}
.incident{border-top:1px solid #ddd;padding:.5em 0}small{color:#555}
.live{border-left:6px solid #c92a2a;padding:.6em 1em;background:#fff5f5;margin:.8em 0}
.updates{list-style:none;padding-left:0}.updates li{margin:.3em 0}
.days{display:flex;align-items:flex-end;gap:1px;height:44px;list-style:none;padding:0;margin:.5em 0 0}
.days li{flex:1;height:var(--h);position:relative;border-radius:1px}.days a{display:block;height:100%}
.day-full{background:#2b8a3e}.day-ok{background:#f59f00}.day-bad{background:#c92a2a}.day-none{background:#ced4da}
.days .tip{display:none;position:absolute;top:calc(100% + 6px);left:50%;transform:translateX(-50%);white-space:nowrap;
background:#343a40;color:#fff;padding:.2em .5em;border-radius:3px;font-size:.85em;z-index:1}
.days li:hover .tip,.days li:focus-within .tip,.days li:target .tip{display:block}
.days li:nth-child(-n+20) .tip{left:0;transform:none}
.days li:nth-last-child(-n+20) .tip{left:auto;right:0;transform:none}
.days-scale{display:flex;justify-content:space-between;margin:0}
"""


def current_state(prom: Prometheus, s: Settings, windows: list[Maintenance], now: float) -> str:
    """up, down, maintenance or unknown (no probe result: the exporter or Prometheus is blind)."""
    if any(m.active(now) for m in windows):
        return "maintenance"
    # The newest result of the last five steps (30 s at least), not Prometheus's 5-minute
    # lookback: without a result that recent nobody can say SPSE is up.
    recent = max(5 * s.step_s, 30)
    value = prom.value(f'max(last_over_time(lpse_spse_up{{instance="{s.spse_instance}"}}[{recent:g}s]))', at=now)
    if value is None:
        return "unknown"
    return "up" if value >= 1 else "down"


PERIODS_D = (1, 30, 90)  # the public uptime figures, in days
Figures = list[tuple[int, Availability | None]]


@dataclass(frozen=True)
class Uptime:
    figures: Figures  # over PERIODS_D
    days: list[Day]  # a bar a day, the last 90


@dataclass
class FigureCache:
    """The public uptime figures, shared by the readers of one `ttl`: 90 days at the scrape step
    is about 780,000 evaluation steps for Prometheus, too much to redo for every bidder who
    reloads the page before a tender closes. Whoever comes while they are being worked out waits
    for that answer instead of asking again. The current state is never cached."""

    ttl: float = 60.0
    _key: tuple[tuple[float, float], ...] | None = None
    _at: float = 0.0
    _figures: Uptime = field(default_factory=lambda: Uptime([], []))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, spans: list[tuple[float, float]], now: float, compute: Callable[[], Uptime]) -> Uptime:
        key = tuple(spans)  # a maintenance window announced or ended changes the figures at once
        with self._lock:
            if key != self._key or not 0 <= now - self._at < self.ttl:
                self._figures, self._key, self._at = compute(), key, now
            return self._figures


def uptime_figures(prom: Prometheus, s: Settings, spans: list[tuple[float, float]], now: float) -> Uptime:
    figures = [(d, availability(prom, s.spse_instance, now - d * 86400, now, s.step_s, spans)) for d in PERIODS_D]
    return Uptime(figures, daily(prom, s.spse_instance, s.timezone, now, s.step_s, PERIODS_D[-1], spans))


@dataclass(frozen=True)
class Now:
    """What the public page, the feed and the JSON say at one moment."""

    at: float
    state: str
    figures: Figures
    days: list[Day]
    windows: list[Maintenance]
    incidents: list[Incident]


def public_now(s: Settings, now: float, cache: FigureCache | None = None) -> Now:
    prom = Prometheus(s.prometheus_url)
    windows = maintenance_windows(s.records_dir / "maintenance")
    spans = [(m.start, m.end) for m in windows]
    try:
        state = current_state(prom, s, windows, now)
        compute = functools.partial(uptime_figures, prom, s, spans, now)
        uptime = cache.get(spans, now, compute) if cache else compute()
    except PrometheusError as e:
        log.warning("%s", e)
        state, uptime = "unknown", Uptime([], [])
    public = [i for i in incidents(s.records_dir / "incidents") if i.published or i.updates]
    return Now(now, state, uptime.figures, uptime.days, windows, public)


def public_page(s: Settings, lang: str, now: float | None = None, cache: FigureCache | None = None) -> str:
    """The public page in Bahasa Indonesia (`lang` "id") or English ("en"): lpse_status.public."""
    return public.render(s, lang, public_now(s, now or time.time(), cache), STYLE)


def _updates_html(i: Incident, tz: dt.tzinfo) -> str:
    """On-call's public updates as /ops shows them, newest first, each with its time."""
    rows = "".join(
        f'<li data-state="{escape(str(u["state"]))}"><small>{_when(float(u["at"]), tz)}</small> '
        f"<b>{STATES[str(u['state'])][0]}</b>: {escape(str(u['message_id']))}</li>"
        for u in reversed(i.updates)
    )
    return f'<ul class="updates">{rows}</ul>' if rows else ""


GRAPHS = [
    # (title, PromQL, legend label, unit, ymax)
    ("Disk terpakai / disk used", "100 * (1 - lpse_filesystem_avail_bytes / lpse_filesystem_size_bytes)",
     "{instance} {mountpoint}", "%", 100),
    ("RAM tersedia / RAM available", "lpse_memory_available_bytes", "{instance}", "bytes", None),
    ("Bandwidth keluar / outbound", "8 * rate(lpse_network_transmit_bytes_total[2m])", "{instance} {interface}",
     "bits/s", None),
    ("Bandwidth masuk / inbound", "8 * rate(lpse_network_receive_bytes_total[2m])", "{instance} {interface}",
     "bits/s", None),
    ("SPSE up (1) / down (0)", "max by (instance) (lpse_spse_up)", "{instance}", "", 1),
    ("Waktu respons SPSE / SPSE response time", "max by (instance) (lpse_spse_probe_duration_seconds)", "{instance}",
     "s", None),
]  # fmt: skip


def ops_page(s: Settings, hours: float, now: float | None = None) -> str:
    now = now or time.time()
    prom = Prometheus(s.prometheus_url)
    start = now - hours * 3600
    step = max(s.step_s, hours * 3600 / 300)
    parts = [
        f'<!doctype html><html lang="id"><head><meta charset="utf-8"><title>Operasional — {escape(s.site_name)}</title>'
        f"<style>{STYLE} body{{max-width:760px}}</style></head><body><h1>Operasional SPSE / Operations</h1>"
        f"<p>{escape(s.site_name)} — {hours:g} jam — "
        + " ".join(f'<a href="?hours={h}">{h} h</a>' for h in (1, 24, 168, 720))
        + "</p>"
    ]
    try:
        rows = []
        for inst in sorted({x.labels.get("instance", "") for x in prom.query("up{job='lpse'}")}):
            a = availability(prom, inst, now - 30 * 86400, now, s.step_s) if inst == s.spse_instance else None
            up = prom.value(f'up{{job="lpse",instance="{inst}"}}')
            rows.append(
                f"<tr><td>{escape(inst)}</td><td>{'up' if up == 1 else 'DOWN'}</td>"
                f"<td>{f'{a.up_share * 100:.2f}%' if a else '-'}</td></tr>"
            )
        parts.append(
            "<h2>Host</h2><table id=hosts><tr><th>host</th><th>scrape</th><th>SPSE 30 d</th></tr>"
            + "".join(rows)
            + "</table>"
        )
        for title, expr, legend, unit, ymax in GRAPHS:
            series = prom.query_range(expr, start, now, step)
            lines = [(legend.format_map(_Labels(x.labels)), x.points) for x in series]
            parts.append(f'<div class="graph">{line_chart(title, lines, unit, 0, ymax)}</div>')
        parts.append(room_section(prom, s.timezone, now))
    except PrometheusError as e:
        parts.append(f"<p id=error>{escape(str(e))}</p>")
    parts.append(incidents_section(s.records_dir / "incidents", s.timezone))
    parts.append(helpdesk_section(s.records_dir / "helpdesk", s.records_dir / "incidents", s.timezone))
    parts.append(visits_section(s.records_dir / "visits", s.timezone))
    parts.append("</body></html>")
    return "".join(parts)


# The server room's alerts (R4): a row of the room view is flagged when one of these fires for it.
ROOM_ALERTS = "Ups.*|Room.*|Hardware.*"


def _firing(prom: Prometheus, at: float) -> dict[tuple[str, str], list[str]]:
    """Firing server-room alerts by (instance, UPS or sensor)."""
    out: dict[tuple[str, str], list[str]] = {}
    for a in prom.query(f'ALERTS{{alertstate="firing",alertname=~"{ROOM_ALERTS}"}}', at):
        key = (a.labels.get("instance", ""), a.labels.get("ups") or a.labels.get("sensor", ""))
        out.setdefault(key, []).append(a.labels["alertname"])
    return out


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


# What /ops shows of each UPS besides its status flags.
UPS_FIGURES = (
    "lpse_ups_battery_charge_ratio",
    "lpse_ups_battery_runtime_seconds",
    "lpse_ups_load_ratio",
    "lpse_ups_input_voltage_volts",
    "lpse_ups_self_test_requested_timestamp_seconds",
    "lpse_ups_self_test_passed",
)


def room_section(prom: Prometheus, tz: dt.tzinfo, at: float) -> str:
    """Power and temperature now (R4), each row flagged with the alerts that fire for it: the page
    judges with the alert rules' own thresholds."""
    firing = _firing(prom, at)

    def by(expr: str, keys: tuple[str, ...]) -> dict[tuple[str, ...], float]:
        """Every series of `expr` at `at`, by the values of `keys` (one query per figure, not
        one per figure and row)."""
        return {tuple(r.labels.get(k, "") for k in keys): r.points[0][1] for r in prom.query(expr, at)}

    ups_keys = ("instance", "ups")
    ups = {name: by(name, ups_keys) for name in UPS_FIGURES}
    flags: dict[tuple[str, ...], list[str]] = {}
    for r in prom.query("lpse_ups_status == 1", at):
        flags.setdefault(tuple(r.labels.get(k, "") for k in ups_keys), []).append(r.labels.get("flag", ""))
    ups_rows = []
    for key, up in sorted(by("lpse_ups_up", ups_keys).items()):
        inst, name = key
        asked = ups["lpse_ups_self_test_requested_timestamp_seconds"].get(key)
        passed = ups["lpse_ups_self_test_passed"].get(key)
        alerts = firing.get((inst, name), [])
        ups_rows.append(
            f'<tr class="{"flag" if alerts else ""}"><td>{escape(name)} ({escape(inst)})</td>'
            f"<td>{'tidak terbaca / unreachable' if up != 1 else escape(' '.join(sorted(flags.get(key, []))))}</td>"
            f"<td>{_cell(ups['lpse_ups_battery_charge_ratio'].get(key), '{:.0%}')}</td>"
            f"<td>{_cell(ups['lpse_ups_battery_runtime_seconds'].get(key), '{:.0f} s')}</td>"
            f"<td>{_cell(ups['lpse_ups_load_ratio'].get(key), '{:.0%}')}</td>"
            f"<td>{_cell(ups['lpse_ups_input_voltage_volts'].get(key), '{:.0f} V')}</td>"
            f"<td>{'-' if passed is None else ('lulus / passed' if passed == 1 else 'GAGAL / FAILED')}"
            f"{'' if asked is None else ' (' + _when(asked, tz) + ')'}</td>"
            f"<td>{escape(', '.join(alerts))}</td></tr>"
        )
    temp_keys = ("instance", "chip", "sensor")
    high = by("lpse_temperature_max_celsius", temp_keys)
    critical = by("lpse_temperature_critical_celsius", temp_keys)
    temp_rows = []
    for key, now in sorted(by("lpse_temperature_celsius", temp_keys).items()):
        inst, chip, sensor = key
        alerts = firing.get((inst, sensor), [])
        temp_rows.append(
            f'<tr class="{"flag" if alerts else ""}"><td>{escape(inst)}</td><td>{escape(chip)}</td>'
            f"<td>{escape(sensor)}</td><td>{now:.1f} °C</td>"
            f"<td>{_cell(high.get(key), '{:.0f} °C')}</td>"
            f"<td>{_cell(critical.get(key), '{:.0f} °C')}</td>"
            f"<td>{escape(', '.join(alerts))}</td></tr>"
        )
    return (
        "<h2>Ruang server / Server room</h2><h3>UPS</h3>"
        + (
            "<table id=ups><tr><th>UPS</th><th>status</th><th>baterai / charge</th><th>runtime</th>"
            "<th>beban / load</th><th>PLN / mains</th><th>uji mandiri / self-test</th><th>alert</th></tr>"
            + "".join(ups_rows)
            + "</table>"
            if ups_rows
            else "<p id=ups>Tidak ada UPS yang terpantau / no UPS is watched (roles/ups).</p>"
        )
        + "<h3>Suhu / Temperature</h3>"
        + (
            "<table id=temperatures><tr><th>host</th><th>chip</th><th>sensor</th><th>sekarang / now</th>"
            "<th>batas / high</th><th>kritis / critical</th><th>alert</th></tr>" + "".join(temp_rows) + "</table>"
            if temp_rows
            else "<p id=temperatures>Tidak ada sensor suhu / no temperature sensors "
            "(no hwmon, IPMI or room sensor on any host).</p>"
        )
    )


VISIT_FIELDS = (
    ("visitor", "Nama / Name"),
    ("organisation", "Instansi / Organisation"),
    ("purpose", "Keperluan / Purpose"),
    ("allowed_by", "Diizinkan oleh / Allowed by"),
    ("escort", "Pendamping / Escort"),
)


def visits_section(folder: Path, tz: dt.tzinfo) -> str:
    """Who is in the server room now (each with a button to record them leaving), the last
    visits, and the form to record someone going in (R4: visitors only with permission)."""
    all_visits = visits(folder) if folder.is_dir() else []
    inside = [v for v in all_visits if v.left is None]

    def out(v: Visit) -> str:
        if v.left:
            return _when(v.left, tz)
        return _button("leave", "visit", v.id, "keluar / left")

    rows = "".join(
        f"<tr><td>{escape(v.visitor)}</td><td>{escape(v.organisation)}</td><td>{escape(v.purpose)}</td>"
        f"<td>{escape(v.allowed_by)}</td><td>{_when(v.entered, tz)}</td><td>{out(v)}</td></tr>"
        for v in inside + [v for v in reversed(all_visits) if v.left is not None][:10]
    )
    fields = "".join(f'<label>{label} <input name={name}{"" if name == "escort" else " required"}></label> '
                     for name, label in VISIT_FIELDS)  # fmt: skip
    return (
        f"<h2>Kunjungan ruang server / Server-room visits</h2><p>{len(inside)} orang di dalam / inside now</p>"
        "<table id=visits><tr><th>nama</th><th>instansi</th><th>keperluan</th><th>diizinkan oleh</th>"
        f"<th>masuk / in</th><th>keluar / out</th></tr>{rows}</table>"
        f"<form id=visit-in method=post action=/ops><input type=hidden name=action value=enter>{fields}"
        "<button>catat masuk / record entry</button></form>"
    )


def _button(action: str, field: str, value: str, label: str) -> str:
    """A one-button form on /ops: `action` on the record `field`=`value`."""
    return (
        f"<form method=post action=/ops><input type=hidden name=action value={action}>"
        f'<input type=hidden name={field} value="{escape(value)}"><button>{label}</button></form>'
    )


def _options(known: dict[str, tuple[str, str]], chosen: str = "") -> str:
    return "".join(f'<option value="{k}"{" selected" if k == chosen else ""}>{v[0]} / {v[1]}</option>'
                   for k, v in known.items())  # fmt: skip


def _checkboxes(name: str, known: dict[str, tuple[str, str]], chosen: list[str]) -> str:
    return "".join(f'<label><input type=checkbox name={name} value="{k}"{" checked" if k in chosen else ""}> '
                   f"{v[0]}</label> " for k, v in known.items())  # fmt: skip


def incidents_section(folder: Path, tz: dt.tzinfo) -> str:
    """Open disruptions, each with the form for its next public update, and the form to open one
    no alert saw (R14: tell users when problems block their work)."""
    found = incidents(folder)
    current = [i for i in found if i.live or (i.resolved is None and i.state != "resolved")]
    blocks = []
    for i in current:
        blocks.append(
            f'<div class="incident" id="ops-incident-{escape(i.id)}"><b>{escape(i.summary_id or i.alertname)}</b> '
            f"<small>{escape(i.id)} · {escape(i.state or 'belum diumumkan / not announced')}</small>"
            f"{_updates_html(i, tz)}"
            "<form method=post action=/ops><input type=hidden name=action value=incident_update>"
            f'<input type=hidden name=incident value="{escape(i.id)}">'
            f"<select name=state>{_options(STATES)}</select> "
            f"<select name=severity>{_options(SEVERITIES, i.severity)}</select><br>"
            f"{_checkboxes('affects', AFFECTS, i.affects)}<br>"
            "<label>Kabar / message (ID) <input name=message_id required size=60></label><br>"
            "<label>English <input name=message_en size=60></label> <button>umumkan / post</button></form></div>"
        )
    return (
        "<h2>Gangguan / Incidents</h2>"
        + ("".join(blocks) or "<p>Tidak ada gangguan terbuka / no open incident.</p>")
        + "<form id=incident-open method=post action=/ops><input type=hidden name=action value=incident_open>"
        "<b>Buka gangguan / open an incident</b><br>"
        "<label>Judul / headline (ID) <input name=summary_id required size=50></label> "
        "<label>English <input name=summary_en size=40></label><br>"
        f"<select name=severity>{_options(SEVERITIES, 'major')}</select> {_checkboxes('affects', AFFECTS, [])}<br>"
        "<label>Kabar pertama / first message (ID) <input name=message_id required size=60></label> "
        "<label>English <input name=message_en size=40></label> <button>buka / open</button></form>"
    )


def helpdesk_section(folder: Path, incidents_folder: Path, tz: dt.tzinfo) -> str:
    """The last reports from bidders (those not yet told back first), and the form for a new one."""
    all_reports = helpdesk.reports(folder) if folder.is_dir() else []
    shown = [r for r in all_reports if r.told is None] + [r for r in all_reports if r.told is not None][:10]
    options = '<option value="">-</option>' + "".join(
        f'<option value="{escape(i.id)}">{escape(i.summary_id or i.alertname)} ({escape(i.id[:15])})</option>'
        for i in incidents(incidents_folder)[:20]
    )

    def told(r: helpdesk.Report) -> str:
        if r.told:
            return _when(r.told, tz)
        return _button("helpdesk_told", "report", r.id, "sudah dikabari / told")

    rows = "".join(
        f"<tr><td>{_when(r.at, tz)}</td><td>{escape(r.reporter)}<br><small>{escape(r.contact)}</small></td>"
        f"<td>{escape(r.summary)}</td><td>{helpdesk.URGENCIES[r.urgency][0]}</td><td>{helpdesk.IMPACTS[r.impact][0]}</td>"
        f"<td>{escape(r.incident or '-')}</td><td>{told(r)}</td></tr>"
        for r in shown
    )
    return (
        f"<h2>Laporan helpdesk / Helpdesk reports</h2><p>{sum(r.told is None for r in all_reports)} belum dikabari / "
        "not yet told back</p><table id=helpdesk><tr><th>masuk / in</th><th>pelapor / reporter</th><th>laporan</th>"
        f"<th>urgensi</th><th>dampak</th><th>gangguan / incident</th><th>dikabari / told</th></tr>{rows}</table>"
        "<form id=helpdesk-add method=post action=/ops><input type=hidden name=action value=helpdesk_add>"
        "<label>Pelapor / reporter <input name=reporter required></label> "
        "<label>Kontak / contact <input name=contact></label> "
        f"<select name=channel>{''.join(f'<option>{c}</option>' for c in helpdesk.CHANNELS)}</select><br>"
        "<label>Laporan / report <input name=summary required size=60></label><br>"
        f"<select name=urgency>{_options(helpdesk.URGENCIES, 'medium')}</select> "
        f"<select name=impact>{_options(helpdesk.IMPACTS, 'one')}</select> "
        f"<label>gangguan / incident <select name=incident>{options}</select></label> "
        "<button>catat / record</button></form>"
    )


def ops_action(board: Board, form: dict[str, list[str]], login: str, now: float) -> str:
    """What a form on /ops asked for (visits, incidents and their updates, helpdesk reports); the
    login that did it is kept. Returns what was done; ValueError/KeyError say what is wrong. An
    incident's notice is queued; the board's mail loop sends it."""
    records = board.records
    one = {k: v[0] for k, v in form.items()}
    action = one.get("action", "")
    if action in ("enter", "leave"):
        return record_visit(records / "visits", one, login, now)
    if action == "incident_open":
        i = open_incident(records / "incidents", one.get("summary_id", ""), one.get("summary_en", ""),
                          one.get("severity", "major"), form.get("affects", []), one.get("message_id", ""),
                          one.get("message_en", ""), login, now)  # fmt: skip
        return f"incident {i.id} opened; {incident_updated(board, i, now, send_now=False)}"
    if action == "incident_update":
        i = post_update(records / "incidents", one.get("incident", ""), one.get("state", ""),
                        one.get("message_id", ""), one.get("message_en", ""), login, now, one.get("severity", ""),
                        form.get("affects"))  # fmt: skip
        return f"incident {i.id} {i.state}; {incident_updated(board, i, now, send_now=False)}"
    if action == "helpdesk_add":
        r = helpdesk.add(records / "helpdesk", records / "incidents", one.get("reporter", ""), one.get("summary", ""),
                         one.get("urgency", ""), one.get("impact", ""), now, one.get("contact", ""),
                         one.get("channel", "telepon"), one.get("incident", ""), login)  # fmt: skip
        return f"helpdesk report {r.id} recorded"
    if action == "helpdesk_told":
        return f"helpdesk report {helpdesk.told(records / 'helpdesk', one.get('report', ''), now).id} told back"
    raise ValueError(f"unknown action {action!r}")


def record_visit(folder: Path, form: dict[str, str], login: str, now: float) -> str:
    """A visit entered or left from the /ops form; the login that recorded it is kept. Returns what
    was done; ValueError/KeyError say what is wrong."""
    if form.get("action") == "enter":
        v = enter(
            folder,
            form.get("visitor", ""),
            form.get("organisation", ""),
            form.get("purpose", ""),
            form.get("allowed_by", ""),
            now,
            escort=form.get("escort", ""),
            recorded_by=login,
        )
        return f"visit {v.id} entered"
    if form.get("action") == "leave":
        return f"visit {leave(folder, form.get('visit', ''), now).id} left"
    raise ValueError("action must be enter or leave")


class _Labels(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


StartResponse = Callable[..., Any]
FILE_KINDS = {".csv": "text/csv; charset=utf-8", ".json": "application/json", ".pem": "application/x-pem-file",
              ".sha256": "text/plain; charset=utf-8", ".sig": "application/octet-stream"}  # fmt: skip


class StatusBoard:
    """The pages and the forms, a WSGI application (waitress serves it: `serve`). `wake` wakes the
    mail loop when a form has queued a notice."""

    def __init__(self, s: Settings, wake: threading.Event | None = None) -> None:
        self.s, self.figures, self.wake = s, FigureCache(), wake or threading.Event()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        path, method = environ.get("PATH_INFO", "/"), environ.get("REQUEST_METHOD", "GET")
        if method == "POST" and path == "/ops":
            return self.ops_form(environ, start_response)
        if method == "POST" and path == "/alertmanager":
            return self.webhook(environ, start_response)
        if method not in ("GET", "HEAD"):
            return send(start_response, 405, "GET only here\n", "text/plain")
        q = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        s = self.s
        try:
            if path == "/":
                lang = "en" if q.get("lang", ["id"])[0] == "en" else "id"
                return send(start_response, 200, public_page(s, lang, cache=self.figures))
            if path == "/status.json":
                data = feeds.status_json(s.site_name, s.public_url, s.target, public_now(s, time.time(), self.figures))
                return send(start_response, 200, json.dumps(data, ensure_ascii=False, indent=1), "application/json")
            if path.startswith("/data/") and opendata.NAME.match(path.removeprefix("/data/")):
                file = s.records_dir / "open-data" / path.removeprefix("/data/")
                try:
                    return send(start_response, 200, file.read_bytes(), FILE_KINDS.get(file.suffix, "text/plain"))
                except OSError:
                    return send(start_response, 404, "not found\n", "text/plain")
            if path == "/feed.atom":
                atom = feeds.atom(s.site_name, s.public_url, s.timezone, public_now(s, time.time(), self.figures))
                return send(start_response, 200, atom, "application/atom+xml; charset=utf-8")
            if path == "/ops":
                hours = min(24 * 90, max(1.0, float(q.get("hours", ["24"])[0])))
                return send(start_response, 200, ops_page(s, hours))
            if path == "/healthz":
                ok = Prometheus(s.prometheus_url, timeout=5).value("vector(1)") == 1
                return send(start_response, 200 if ok else 503, "ok\n" if ok else "prometheus\n", "text/plain")
            return send(start_response, 404, "not found\n", "text/plain")
        except (PrometheusError, ValueError) as e:
            return send(start_response, 503, f"{e}\n", "text/plain")

    def webhook(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        """Alertmanager's notifications; only it opens incidents (any process on the host could
        reach this port, so its bearer token is required)."""
        s = self.s
        sent = environ.get("HTTP_AUTHORIZATION", "").removeprefix("Bearer ").encode()
        if not s.webhook_token or not hmac.compare_digest(sent, s.webhook_token.encode()):
            log.warning("webhook: refused a notification from %s without the right token", environ.get("REMOTE_ADDR"))
            return send(start_response, 401, "a bearer token is required (alertmanager_incident_webhook_token)\n",
                        "text/plain")  # fmt: skip
        try:
            payload = json.loads(_body(environ, 1 << 20))
            ids = on_notification(payload, s.records_dir / "incidents", Prometheus(s.prometheus_url), s.step_s)
        except (ValueError, KeyError, OSError) as e:
            log.warning("webhook: %s", e)
            return send(start_response, 400, f"{e}\n", "text/plain")
        log.info("webhook: incidents %s", ", ".join(ids) or "(none)")
        return send(start_response, 200, "ok\n", "text/plain")

    def ops_form(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        """The forms of /ops (visits, incidents, helpdesk): behind nginx's login (which names the
        operator); a browser's post from another site is refused (the login alone would let it
        through)."""
        login = environ.get("HTTP_X_FORWARDED_USER", "")
        origin = urllib.parse.urlsplit(environ.get("HTTP_ORIGIN", "")).netloc
        if not login:
            return send(start_response, 401, "the operations login is required\n", "text/plain")
        # nginx passes the host the browser asked for (its own request to here names 127.0.0.1).
        if origin and origin != environ.get("HTTP_HOST", ""):  # waitress puts nginx's X-Forwarded-Host there
            log.warning("ops form: refused a post from %s (origin %s)", login, origin)
            return send(start_response, 403, "a form from another site is refused\n", "text/plain")
        form = urllib.parse.parse_qs(_body(environ, 1 << 16).decode())
        try:
            done = ops_action(self.s.board, form, login, time.time())
        except (ValueError, KeyError) as e:
            return send(start_response, 400, f"{e.args[0] if e.args else e}\n", "text/plain")
        self.wake.set()
        log.info("ops form: %s by %s", done, login)
        start_response("303 See Other", [("Location", "/ops"), ("Content-Length", "0")])
        return [b""]


def _body(environ: dict[str, Any], limit: int) -> bytes:
    size = int(environ.get("CONTENT_LENGTH") or 0)
    return bytes(environ["wsgi.input"].read(min(size, limit)))


def send(start_response: StartResponse, code: int, body: str | bytes, kind: str = "text/html; charset=utf-8",
         ) -> list[bytes]:  # fmt: skip
    data = body.encode() if isinstance(body, str) else body
    headers = [("Content-Type", kind), ("Content-Length", str(len(data))), ("Cache-Control", "no-store")]
    start_response(f"{code} {HTTPStatus(code).phrase}", headers)
    return [data]


CHECK_S = 60  # power cuts and the outbox, every minute (the outbox sooner when a form wakes it)


def write_open_data(s: Settings, now: float) -> list[str]:
    """The files of every completed month since the first probe result that has none yet."""
    prom = Prometheus(s.prometheus_url, timeout=120)
    first = first_probe(prom, s.spse_instance, now - 366 * 86400, now, s.step_s)
    if first is None:
        return []
    folder = s.records_dir / "open-data"
    missing = [m for m in completed_months(first, now, s.timezone) if not (folder / f"ketersediaan-{m}.json").exists()]
    if not missing:
        return []
    key, windows = load_key(s.signing_key), maintenance_windows(s.records_dir / "maintenance")
    for month in missing:
        opendata.export(prom, s.spse_instance, s.step_s, s.timezone, s.site_name, windows, month, key, folder)
    return missing


def background(s: Settings, wake: threading.Event, stop: threading.Event) -> None:
    """An incident record for each power-off whose host is back (lpse_status.power), each
    completed month's open-data files (lpse_status.opendata), and the notices in the outbox sent
    (lpse_status.notices)."""
    next_power = 0.0
    while not stop.is_set():
        if time.monotonic() >= next_power:
            next_power = time.monotonic() + CHECK_S
            try:
                made = record_power_cuts(Prometheus(s.prometheus_url), s.records_dir / "incidents", time.time())
            except (PrometheusError, OSError) as e:
                log.warning("power cuts: %s", e)
            else:
                for incident_id in made:
                    log.info("power cuts: incident %s recorded from the UPS's timeline", incident_id)
            try:
                for month in write_open_data(s, time.time()):
                    log.info("open data: %s written", month)
            except (PrometheusError, OSError, ValueError) as e:
                log.warning("open data: %s", e)
        if s.mail.to:
            try:
                deliver(s.records_dir, s.mail)
            except OSError as e:
                log.warning("notices: %s", e)
        wake.wait(max(0.0, next_power - time.monotonic()))
        wake.clear()


def create_server(app: StatusBoard, host: str, port: int) -> Any:
    """waitress, a production WSGI server, as the board runs it. nginx (on this host) is its one
    client: the host the browser asked for (X-Forwarded-Host) is taken from it, which the /ops
    forms check their Origin against; waitress drops every other proxy header."""
    import waitress.server

    return waitress.server.create_server(
        app, host=host, port=port, threads=SERVER_THREADS, ident="lpse-status", channel_timeout=30,
        trusted_proxy="127.0.0.1", trusted_proxy_headers={"x-forwarded-host"}, clear_untrusted_proxy_headers=True,
    )  # fmt: skip


def serve(s: Settings) -> None:
    """When SPSE is down every bidder reloads this page: the figures they share are worked out once
    a minute (FigureCache), and nginx keeps each page a second."""
    wake = threading.Event()
    threading.Thread(target=background, args=(s, wake, threading.Event()), daemon=True).start()
    log.info("lpse-status on http://%s:%d (Prometheus %s)", s.listen, s.port, s.prometheus_url)
    create_server(StatusBoard(s, wake), s.listen, s.port).run()


SERVER_THREADS = 16  # requests worked on at once; the rest wait in waitress's queue
