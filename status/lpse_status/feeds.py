"""The public page as feeds (R14): `/status.json`, the state for programs (documented in
status/README.md, `version` raised on any change that breaks a reader), and `/feed.atom`, the
public incidents and maintenance windows for feed readers. Only what the public page shows: no
staff names, no helpdesk reports."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from lpse_status.incidents import AFFECTS, SEVERITIES, STATES
from lpse_status.records import Incident

if TYPE_CHECKING:
    from lpse_status.web import Now

JSON_VERSION = 1
FEED_ENTRIES = 50


def _iso(ts: float | None) -> str | None:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if ts is not None else None


def _incident(i: Incident) -> dict[str, Any]:
    return {
        "id": i.id,
        "headline_id": i.summary_id,
        "headline_en": i.summary_en,
        "severity": i.severity,
        "affects": i.affects,
        "since": _iso(i.first_failure),
        "ended": _iso(i.recovered or i.resolved),
        "state": i.state or ("resolved" if i.resolved else ""),
        "cause_id": i.cause_id if i.published else "",
        "cause_en": i.cause_en if i.published else "",
        "updates": [
            {
                "at": _iso(float(u["at"])),
                "state": u["state"],
                "message_id": u["message_id"],
                "message_en": u["message_en"],
            }
            for u in i.updates
        ],
    }


def status_json(site: str, page: str, target: float, now: Now) -> dict[str, Any]:
    return {
        "version": JSON_VERSION,
        "site": site,
        "page": page,
        "checked": _iso(now.at),
        "state": now.state,
        "open_incidents": [_incident(i) for i in now.incidents if i.live],
        "maintenance": [
            {
                "start": _iso(m.start),
                "end": _iso(m.end),
                "active": m.active(now.at),
                "reason_id": m.reason_id,
                "reason_en": m.reason_en,
            }
            for m in now.windows
            if m.end > now.at
        ],
        # A period without any probe result has no figure (null), as the page says "no data yet".
        "availability": [
            {
                "days": days,
                "ratio": round(a.up_share, 6) if a else None,
                "ratio_excluding_maintenance": round(a.excluding_maintenance, 6) if a else None,
                "measured_since": _iso(a.measured_from) if a else None,
            }
            for days, a in now.figures
        ],
        "target": target,
        "recent_incidents": [_incident(i) for i in now.incidents if not i.live][:10],
    }


def _entry(entry_id: str, title: str, updated: float, link: str, text: str) -> str:
    return (
        f"<entry><id>{escape(entry_id)}</id><title>{escape(title)}</title><updated>{_iso(updated)}</updated>"
        f'<link href="{escape(link)}"/><content type="text">{escape(text)}</content></entry>'
    )


def atom(site: str, page: str, tz: dt.tzinfo, now: Now) -> str:
    """Newest first; an entry's `updated` moves with each public update, so a reader shows it again."""

    def when(ts: float) -> str:
        return dt.datetime.fromtimestamp(ts, tz).strftime("%d-%m-%Y %H:%M %Z")

    base = page or "urn:lpse-status:"
    entries: list[tuple[float, str]] = []
    for i in now.incidents:
        updated = max([float(u["at"]) for u in i.updates] + [i.resolved or i.first_failure])
        state = STATES.get(i.state or ("resolved" if i.resolved else "investigating"), STATES["investigating"])
        lines = [
            f"{SEVERITIES.get(i.severity, SEVERITIES['major'])[0]}; terdampak: "
            + ", ".join(AFFECTS[a][0] for a in i.affects if a in AFFECTS),
            f"Sejak {when(i.first_failure)}",
            *(f"{when(float(u['at']))} {STATES[str(u['state'])][0]}: {u['message_id']}" for u in reversed(i.updates)),
        ]
        if i.published:
            lines.append(f"Penyebab: {i.cause_id}")
        title = f"[{state[0]}] {i.summary_id or i.alertname}"
        entries.append((updated, _entry(f"{base}#incident-{i.id}", title, updated, base, "\n".join(lines))))
    for m in now.windows:
        title = f"[Pemeliharaan] {when(m.start)} - {when(m.end)}"
        text = f"{m.reason_id}\n{m.reason_en}" + (" (berakhir lebih awal / ended early)" if m.ended else "")
        entries.append((m.start, _entry(f"{base}#maintenance-{int(m.planned_end)}", title, m.start, base, text)))
    entries.sort(key=lambda e: e[0], reverse=True)
    updated = entries[0][0] if entries else now.at
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<id>{escape(base)}#feed</id><title>Status SPSE — {escape(site)}</title><updated>{_iso(updated)}</updated>"
        f'<link href="{escape(base)}"/><link rel="self" href="{escape(base)}feed.atom"/>'
        + "".join(e for _, e in entries[:FEED_ENTRIES])
        + "</feed>\n"
    )
