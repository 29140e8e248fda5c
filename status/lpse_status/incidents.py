"""Incident records, drafted from what Alertmanager and Prometheus saw, finished by on-call.

Alertmanager posts every critical notification to the status board (a webhook beside the e-mail
and Telegram of the same receiver, so its arrival is the time on-call was told). The first
notification of an alert opens a draft; the "resolved" one closes it, and the timeline is then
read from Prometheus: the first failed probe before the alert, the first good probe after it.
On-call adds the cause and the actions (`lpse-status incidents explain`) and publishes it; the
postmortem export carries the timeline, the graphs and the queries, so an outsider can check it
against the data.

While it lasts, on-call tells the public what is known (`lpse-status incidents update`, `fab
incident-update`, the form on /ops): investigating, identified, monitoring, resolved, each with a
time and words in Bahasa Indonesia (English optional), shown on the public page at once. A
disruption no alert saw (login broken for some bidders, uploads failing) is opened by hand
(`incidents open`) with its severity and what it affects.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup

from lpse_status.i18n import environment
from lpse_status.prom import Prometheus, PrometheusError
from lpse_status.records import Incident, incidents, locked, parse_time
from lpse_status.svg import line_chart

# What the alert watched, per alert name: the series whose failure and recovery date the incident.
PROBES = {
    "SpseDown": 'max(lpse_spse_up{{instance="{instance}"}})',
    "SpseDownAtClosing": 'max(lpse_spse_up{{instance="{instance}"}})',
    "SpseUnreachable": 'max(lpse_spse_up{{instance="{instance}"}})',
    "HostDown": 'max(up{{job="lpse",instance="{instance}"}})',
    "InternetDown": 'max(lpse_internet_probe_up{{instance="{instance}"}})',
    "UplinkDown": 'min(lpse_network_up{{instance="{instance}"}})',
}
LOOK_BACK_S = 3600  # how far before the alert the first failed probe is looked for

# The words the public page uses: (Bahasa Indonesia, English).
STATES = {
    "investigating": ("Sedang diselidiki", "Investigating"),
    "identified": ("Penyebab diketahui", "Identified"),
    "monitoring": ("Sudah diperbaiki, sedang dipantau", "Fixed, monitoring"),
    "resolved": ("Selesai", "Resolved"),
}
SEVERITIES = {
    "critical": ("Gangguan total", "Full outage"),
    "major": ("Gangguan besar", "Major disruption"),
    "minor": ("Gangguan sebagian", "Partial disruption"),
}
AFFECTS = {
    "spse": ("Seluruh SPSE", "All of SPSE"),
    "login": ("Masuk (login)", "Logging in"),
    "upload": ("Unggah dokumen penawaran", "Uploading bid documents"),
    "download": ("Unduh dokumen pengadaan", "Downloading tender documents"),
    "schedule": ("Jadwal dan tahapan tender", "Tender schedules and stages"),
    "email": ("Notifikasi e-mail", "E-mail notifications"),
    "network": ("Jaringan internet LPSE", "The LPSE's internet link"),
}


def incident_id(alertname: str, instance: str, starts_at: float) -> str:
    stamp = dt.datetime.fromtimestamp(starts_at, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{stamp}-{alertname}-{instance}")


@dataclass(frozen=True)
class Timeline:
    first_failure: float
    recovered: float | None


def timeline(prom: Prometheus, alertname: str, instance: str, alert_start: float, resolved: float | None,
             step: float) -> Timeline:  # fmt: skip
    """From the probe the alert watches: the first failed sample of the run of failures that led to
    the alert, and the first good sample after it. Alerts without a probe start at the alert."""
    expr = PROBES.get(alertname)
    if expr is None:
        return Timeline(alert_start, resolved)
    query = expr.format(instance=instance)
    # While it fires only the start matters; once resolved, up to a little after the end.
    start, end = alert_start - LOOK_BACK_S, (resolved + 10 * step) if resolved else alert_start + step
    step = max(step, (end - start) / 10_000)  # Prometheus answers at most 11,000 points
    try:
        series = prom.query_range(f"{query} or vector(0)", start, end, step)
    except PrometheusError:
        return Timeline(alert_start, resolved)
    points = series[0].points if series else []
    first = alert_start
    for t, v in reversed([p for p in points if p[0] <= alert_start]):
        if v >= 1:
            break
        first = t
    recovered = next((t for t, v in points if t > alert_start and v >= 1), None)
    return Timeline(first, recovered)


def on_notification(payload: dict, folder: Path, prom: Prometheus, step: float, now: float | None = None) -> list[str]:
    """One Alertmanager webhook payload: open or close the drafts of its critical alerts.
    Returns the ids it touched."""
    now = now or time.time()
    with locked(folder):
        return _on_notification(payload, folder, prom, step, now)


def _on_notification(payload: dict, folder: Path, prom: Prometheus, step: float, now: float) -> list[str]:
    known = {i.id: i for i in incidents(folder)}
    touched = []
    for a in payload.get("alerts", []):
        labels = a.get("labels", {})
        if labels.get("severity") != "critical" or labels.get("alertname") == "Watchdog":
            continue
        name, instance = labels.get("alertname", "?"), labels.get("instance", "")
        start = parse_time(a["startsAt"])
        iid = incident_id(name, instance, start)
        inc = known.get(iid) or Incident(
            id=iid, alertname=name, instance=instance, severity="critical", first_failure=start,
            alert_start=start, notified=None, resolved=None, recovered=None,
            summary_id=a.get("annotations", {}).get("summary", ""),
            summary_en=a.get("annotations", {}).get("summary_en", ""),
        )  # fmt: skip
        if inc.notified is None:
            inc.notified = now
        if a.get("status") == "resolved" and inc.resolved is None:
            inc.resolved = parse_time(a["endsAt"])
        tl = timeline(prom, name, instance, start, inc.resolved, step)
        inc.first_failure, inc.recovered = min(tl.first_failure, start), tl.recovered if inc.resolved else None
        inc.save(folder)
        known[iid] = inc
        touched.append(iid)
    return touched


def explain(folder: Path, iid: str, cause_id: str, cause_en: str, actions: list[str], publish: bool) -> Incident:
    with locked(folder):
        return _explain(folder, iid, cause_id, cause_en, actions, publish)


def _explain(folder: Path, iid: str, cause_id: str, cause_en: str, actions: list[str], publish: bool) -> Incident:
    found = {i.id: i for i in incidents(folder)}
    if iid not in found:
        raise KeyError(f"no incident {iid!r} (lpse-status incidents list shows them)")
    inc = found[iid]
    inc.cause_id, inc.cause_en = cause_id or inc.cause_id, cause_en or inc.cause_en
    inc.actions = actions or inc.actions
    if publish:
        if inc.resolved is None:
            raise ValueError(f"incident {iid} has not been resolved yet: publish it when it has")
        if not (inc.cause_id and inc.cause_en):
            raise ValueError("say the cause in both languages (--cause-id and --cause-en) before publishing")
        inc.published = True
    inc.save(folder)
    return inc


def _choose(kind: str, value: str, known: dict[str, tuple[str, str]]) -> str:
    if value not in known:
        raise ValueError(f"{kind} {value!r} is not one of {', '.join(known)}")
    return value


def open_incident(folder: Path, summary_id: str, summary_en: str, severity: str, affects: list[str],
                  message_id: str, message_en: str, by: str, at: float) -> Incident:  # fmt: skip
    """A disruption on-call knows of before (or without) an alert: public at once, "investigating"."""
    if not summary_id.strip():
        raise ValueError("say what is disrupted, in Bahasa Indonesia (--summary-id): it is the public headline")
    affects = [_choose("affects", a, AFFECTS) for a in affects] or ["spse"]
    _choose("severity", severity, SEVERITIES)
    slug = re.sub(r"[^a-z0-9]+", "-", summary_id.lower()).strip("-")[:30] or "gangguan"
    iid = f"{dt.datetime.fromtimestamp(at, dt.UTC):%Y%m%dT%H%M%SZ}-{slug}"
    if (folder / f"{iid}.json").exists():
        raise ValueError(f"incident {iid} is already recorded")
    inc = Incident(
        id=iid, alertname="Reported", instance="", severity=severity, first_failure=at, alert_start=at,
        notified=at, resolved=None, recovered=None, summary_id=summary_id.strip(), summary_en=summary_en.strip(),
        affects=affects,
    )  # fmt: skip
    return post_update(folder, inc, "investigating", message_id, message_en, by, at)


def post_update(folder: Path, incident: Incident | str, state: str, message_id: str, message_en: str, by: str,
                at: float, severity: str = "", affects: list[str] | None = None) -> Incident:  # fmt: skip
    """A public update: its state, words (Bahasa Indonesia required), time and author. A resolved
    incident takes no more; an update is never dated before the last one."""
    with locked(folder):
        return _post_update(folder, incident, state, message_id, message_en, by, at, severity, affects)


def _post_update(folder: Path, incident: Incident | str, state: str, message_id: str, message_en: str, by: str,
                 at: float, severity: str, affects: list[str] | None) -> Incident:  # fmt: skip
    if isinstance(incident, str):
        found = {i.id: i for i in incidents(folder)}
        if incident not in found:
            raise KeyError(f"no incident {incident!r} (lpse-status incidents list shows them)")
        incident = found[incident]
    inc = incident
    _choose("state", state, STATES)
    if not message_id.strip():
        raise ValueError("say what is known now, in Bahasa Indonesia (--message-id): bidders read it")
    if inc.state == "resolved":
        raise ValueError(f"incident {inc.id} was said resolved at {_when(inc.updates[-1]['at'], dt.UTC)}: "
                         "open a new one if it broke again")  # fmt: skip
    if inc.updates and at < float(inc.updates[-1]["at"]):
        raise ValueError(f"an update cannot come before the last one ({_when(inc.updates[-1]['at'], dt.UTC)})")
    if severity:
        inc.severity = _choose("severity", severity, SEVERITIES)
    if affects:
        inc.affects = [_choose("affects", a, AFFECTS) for a in affects]
    inc.affects = inc.affects or ["spse"]
    inc.updates.append({"at": at, "state": state, "message_id": message_id.strip(), "message_en": message_en.strip(),
                        "by": by})  # fmt: skip
    if state == "resolved" and inc.alertname == "Reported":  # no alert will say when it ended
        inc.resolved = inc.resolved or at
    inc.save(folder)
    return inc


def _when(ts: float | None, tz: dt.tzinfo) -> str:
    return dt.datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M:%S %Z") if ts else "-"


def postmortem(inc: Incident, prom: Prometheus, site: str, tz: dt.tzinfo, step: float) -> str:
    """The incident as an HTML document an outsider can check: timeline, graphs, and the
    queries that give the same figures when run against the site's Prometheus."""
    expr = PROBES.get(inc.alertname, 'ALERTS{{alertname="{alertname}",instance="{instance}"}}')
    query = expr.format(instance=inc.instance, alertname=inc.alertname)
    end = (inc.recovered or inc.resolved or time.time()) + 900
    start = inc.first_failure - 900
    step = max(step, (end - start) / 10_000)
    error = ""
    try:
        probe = prom.query_range(query, start, end, step)
        took = prom.query_range(f'max(lpse_spse_probe_duration_seconds{{instance="{inc.instance}"}})', start, end, step)
    except PrometheusError as e:
        probe, took, error = [], [], str(e)
    timeline = [
        ("Gangguan pertama terdeteksi / first failed probe", inc.first_failure),
        ("Alert menyala / alert fired", inc.alert_start),
        ("Petugas diberi tahu / on-call notified", inc.notified),
        ("Layanan pulih / service back (first good probe)", inc.recovered),
        ("Alert selesai / alert resolved", inc.resolved),
    ]
    graphs = line_chart(f"{inc.alertname}: {query}", [(inc.instance, probe[0].points if probe else [])], "", 0, 1)
    graphs += line_chart("Waktu respons SPSE / response time", [(inc.instance, took[0].points if took else [])], "s")
    return (
        environment("id", "documents")
        .get_template("postmortem.html")
        .render(inc=inc, site=site, timeline=timeline, error=error, graphs=Markup(graphs), states=STATES,
                step=step, start=start, end=end, query=query, when=lambda ts: _when(ts, tz))
    )  # fmt: skip
