"""The operations view (/ops, behind nginx's login): hosts, graphs, the server room, open
incidents with the form for their next public update, helpdesk reports and server-room visits,
from templates/status/ops.html in Bahasa Indonesia (?lang=en: English, lpse_status.i18n). Also
what the view's forms ask for (`action`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from lpse_status import helpdesk
from lpse_status.availability import availability
from lpse_status.i18n import LANGUAGES, catalogue, environment
from lpse_status.incidents import AFFECTS, SEVERITIES, STATES, open_incident, post_update
from lpse_status.notices import Board, incident_updated
from lpse_status.prom import Prometheus, PrometheusError
from lpse_status.public import local_time
from lpse_status.records import enter, incidents, leave, visits
from lpse_status.svg import line_chart

if TYPE_CHECKING:
    from lpse_status.web import Settings

GRAPHS = [
    # (title, PromQL, legend label, unit, ymax)
    ("Disk terpakai", "100 * (1 - lpse_filesystem_avail_bytes / lpse_filesystem_size_bytes)",
     "{instance} {mountpoint}", "%", 100),
    ("RAM tersedia", "lpse_memory_available_bytes", "{instance}", "bytes", None),
    ("Bandwidth keluar", "8 * rate(lpse_network_transmit_bytes_total[2m])", "{instance} {interface}", "bits/s", None),
    ("Bandwidth masuk", "8 * rate(lpse_network_receive_bytes_total[2m])", "{instance} {interface}", "bits/s", None),
    ("SPSE jalan (1) / mati (0)", "max by (instance) (lpse_spse_up)", "{instance}", "", 1),
    ("Waktu respons SPSE", "max by (instance) (lpse_spse_probe_duration_seconds)", "{instance}", "s", None),
]  # fmt: skip

# The server room's alerts (R4): a row of the room view is flagged when one of these fires for it.
ROOM_ALERTS = "Ups.*|Room.*|Hardware.*"
# What /ops shows of each UPS besides its status flags.
UPS_FIGURES = {
    "charge": "lpse_ups_battery_charge_ratio",
    "runtime": "lpse_ups_battery_runtime_seconds",
    "load": "lpse_ups_load_ratio",
    "voltage": "lpse_ups_input_voltage_volts",
    "test_asked": "lpse_ups_self_test_requested_timestamp_seconds",
    "test_passed": "lpse_ups_self_test_passed",
}
VISIT_FIELDS = {"visitor": "Nama", "organisation": "Instansi", "purpose": "Keperluan", "allowed_by": "Diizinkan oleh",
                "escort": "Pendamping"}  # fmt: skip


@dataclass
class Room:
    """Power and temperature now, each row with the room alerts firing for it."""

    ups: list[dict[str, Any]] = field(default_factory=list)
    temperatures: list[dict[str, Any]] = field(default_factory=list)


def _firing(prom: Prometheus, at: float) -> dict[tuple[str, str], list[str]]:
    """Firing server-room alerts by (instance, UPS or sensor)."""
    out: dict[tuple[str, str], list[str]] = {}
    for a in prom.query(f'ALERTS{{alertstate="firing",alertname=~"{ROOM_ALERTS}"}}', at):
        key = (a.labels.get("instance", ""), a.labels.get("ups") or a.labels.get("sensor", ""))
        out.setdefault(key, []).append(a.labels["alertname"])
    return out


def room(prom: Prometheus, at: float) -> Room:
    """The server room (R4), judged with the alert rules' own thresholds (the rows they flag)."""
    firing = _firing(prom, at)

    def by(expr: str, keys: tuple[str, ...]) -> dict[tuple[str, ...], float]:
        """Every series of `expr` at `at`, by the values of `keys` (one query per figure, not
        one per figure and row)."""
        return {tuple(r.labels.get(k, "") for k in keys): r.points[0][1] for r in prom.query(expr, at)}

    ups_keys, temp_keys = ("instance", "ups"), ("instance", "chip", "sensor")
    figures = {name: by(expr, ups_keys) for name, expr in UPS_FIGURES.items()}
    flags: dict[tuple[str, ...], list[str]] = {}
    for r in prom.query("lpse_ups_status == 1", at):
        flags.setdefault(tuple(r.labels.get(k, "") for k in ups_keys), []).append(r.labels.get("flag", ""))
    out = Room()
    for key, up in sorted(by("lpse_ups_up", ups_keys).items()):
        row = {"instance": key[0], "name": key[1], "up": up == 1, "flags": " ".join(sorted(flags.get(key, [])))}
        row |= {name: f.get(key) for name, f in figures.items()}
        out.ups.append(row | {"alerts": firing.get((key[0], key[1]), [])})
    high, critical = by("lpse_temperature_max_celsius", temp_keys), by("lpse_temperature_critical_celsius", temp_keys)
    for key, now in sorted(by("lpse_temperature_celsius", temp_keys).items()):
        out.temperatures.append({"instance": key[0], "chip": key[1], "sensor": key[2], "now": now,
                                 "high": high.get(key), "critical": critical.get(key),
                                 "alerts": firing.get((key[0], key[2]), [])})  # fmt: skip
    return out


class _Labels(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def render(s: Settings, hours: float, now: float, lang: str = "id", style: str = "") -> str:
    """The view over the last `hours`, in `lang` (id or en)."""
    _ = catalogue(lang).gettext
    n = LANGUAGES.index(lang)
    prom = Prometheus(s.prometheus_url)
    start, step = now - hours * 3600, max(s.step_s, hours * 3600 / 300)
    hosts: list[dict[str, Any]] = []
    graphs: list[Markup] = []
    server_room, error = None, ""
    try:
        scraped = {x.labels.get("instance", ""): x.points[0][1] for x in prom.query("up{job='lpse'}")}
        for inst, up in sorted(scraped.items()):
            a = availability(prom, inst, now - 30 * 86400, now, s.step_s) if inst == s.spse_instance else None
            hosts.append({"name": inst, "up": up == 1, "share": a.up_share if a else None})
        for title, expr, legend, unit, ymax in GRAPHS:
            lines = [(legend.format_map(_Labels(x.labels)), x.points) for x in prom.query_range(expr, start, now, step)]
            graphs.append(Markup(line_chart(_(title), lines, unit, 0, ymax)))
        server_room = room(prom, now)
    except PrometheusError as e:
        error = str(e)
    records = s.records_dir
    found = incidents(records / "incidents")
    reports = helpdesk.reports(records / "helpdesk") if (records / "helpdesk").is_dir() else []
    all_visits = visits(records / "visits") if (records / "visits").is_dir() else []
    tz: dt.tzinfo = s.timezone
    return (
        environment(lang, "status")
        .get_template("ops.html")
        .render(
            lang=lang,
            n=n,
            site=s.site_name,
            style=Markup(style),
            hours=hours,
            hosts=hosts,
            graphs=graphs,
            room=server_room,
            error=error,
            current=[i for i in found if i.live or (i.resolved is None and i.state != "resolved")],
            recent=found[:20],
            states=STATES,
            severities=SEVERITIES,
            affects=AFFECTS,
            reports=[r for r in reports if r.told is None] + [r for r in reports if r.told is not None][:10],
            untold=sum(r.told is None for r in reports),
            urgencies=helpdesk.URGENCIES,
            impacts=helpdesk.IMPACTS,
            channels=helpdesk.CHANNELS,
            inside=[v for v in all_visits if v.left is None],
            visits=[v for v in all_visits if v.left is None]
            + [v for v in reversed(all_visits) if v.left is not None][:10],
            visit_fields=VISIT_FIELDS,
            when=lambda ts: local_time(ts, tz),
        )
    )


def action(board: Board, form: dict[str, list[str]], login: str, now: float) -> str:
    """What a form on /ops asked for (visits, incidents and their updates, helpdesk reports); the
    login that did it is kept. Returns what was done; ValueError/KeyError say what is wrong. An
    incident's notice is queued; the board's mail loop sends it."""
    records = board.records
    one = {k: v[0] for k, v in form.items()}
    match one.get("action", ""):
        case "enter":
            v = enter(records / "visits", one.get("visitor", ""), one.get("organisation", ""), one.get("purpose", ""),
                      one.get("allowed_by", ""), now, escort=one.get("escort", ""), recorded_by=login)  # fmt: skip
            return f"visit {v.id} entered"
        case "leave":
            return f"visit {leave(records / 'visits', one.get('visit', ''), now).id} left"
        case "incident_open":
            i = open_incident(records / "incidents", one.get("summary_id", ""), one.get("summary_en", ""),
                              one.get("severity", "major"), form.get("affects", []), one.get("message_id", ""),
                              one.get("message_en", ""), login, now)  # fmt: skip
            return f"incident {i.id} opened; {incident_updated(board, i, now, send_now=False)}"
        case "incident_update":
            i = post_update(records / "incidents", one.get("incident", ""), one.get("state", ""),
                            one.get("message_id", ""), one.get("message_en", ""), login, now, one.get("severity", ""),
                            form.get("affects"))  # fmt: skip
            return f"incident {i.id} {i.state}; {incident_updated(board, i, now, send_now=False)}"
        case "helpdesk_add":
            r = helpdesk.add(records / "helpdesk", records / "incidents", one.get("reporter", ""),
                             one.get("summary", ""), one.get("urgency", ""), one.get("impact", ""), now,
                             one.get("contact", ""), one.get("channel", "telepon"), one.get("incident", ""),
                             login)  # fmt: skip
            return f"helpdesk report {r.id} recorded"
        case "helpdesk_told":
            return f"helpdesk report {helpdesk.told(records / 'helpdesk', one.get('report', ''), now).id} told back"
        case other:
            raise ValueError(f"unknown action {other!r}")
