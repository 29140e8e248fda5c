"""Helpdesk reports from bidders and agencies (R14): who reported what, when, how urgent and how
wide, whether they were told back, and the incident it belongs to. Kept beside the incidents on the
monitoring server (`<records_dir>/helpdesk/`), one JSON file per report."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from lpse_status.records import incidents, load, locked, save

URGENCIES = {
    "high": ("Tinggi (tenggat hari ini)", "High (a deadline today)"),
    "medium": ("Sedang", "Medium"),
    "low": ("Rendah", "Low"),
}
IMPACTS = {
    "one": ("Satu pengguna", "One user"),
    "several": ("Beberapa pengguna", "Several users"),
    "all": ("Semua pengguna", "Every user"),
}
CHANNELS = ("telepon", "email", "whatsapp", "datang", "lainnya")


@dataclass
class Report:
    id: str
    at: float
    reporter: str  # the person, and the company or agency
    contact: str
    channel: str
    summary: str
    urgency: str
    impact: str
    incident: str = ""  # the incident it belongs to, once known
    told: float | None = None  # when the reporter was told back (an answer, the fix)
    recorded_by: str = ""

    def save(self, folder: Path) -> Path:
        return save(folder, self.id, self)


def reports(folder: Path) -> list[Report]:
    """Every report, newest first."""
    return sorted(load(folder, lambda d: Report(**d)), key=lambda r: r.at, reverse=True)


def _incident_known(incidents_folder: Path, iid: str) -> str:
    if iid and iid not in {i.id for i in incidents(incidents_folder)}:
        raise KeyError(f"no incident {iid!r} (lpse-status incidents list shows them)")
    return iid


def add(folder: Path, incidents_folder: Path, reporter: str, summary: str, urgency: str, impact: str, at: float,
        contact: str = "", channel: str = "telepon", incident: str = "", recorded_by: str = "") -> Report:  # fmt: skip
    """Record a report; refused without who and what, or with an urgency, impact or channel not known."""
    missing = [n for n, v in (("reporter", reporter), ("summary", summary)) if not v.strip()]
    if missing:
        raise ValueError(f"a report needs {' and '.join('--' + m for m in missing)}: who reported, and what")
    for kind, value, known in (("urgency", urgency, URGENCIES), ("impact", impact, IMPACTS),
                               ("channel", channel, CHANNELS)):  # fmt: skip
        if value not in known:
            raise ValueError(f"--{kind} {value!r} is not one of {', '.join(known)}")
    stamp = dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    slug = "".join(c if c.isalnum() else "-" for c in reporter.lower()).strip("-")[:24] or "pelapor"
    r = Report(f"{stamp}-{slug}", at, reporter.strip(), contact.strip(), channel, summary.strip(), urgency, impact,
               _incident_known(incidents_folder, incident), recorded_by=recorded_by)  # fmt: skip
    if (folder / f"{r.id}.json").exists():
        raise ValueError(f"report {r.id} is already recorded")
    r.save(folder)
    return r


def _find(folder: Path, report_id: str) -> Report:
    found = {r.id: r for r in reports(folder)}
    if report_id not in found:
        raise KeyError(f"no report {report_id!r} (lpse-status helpdesk list shows them)")
    return found[report_id]


def link(folder: Path, incidents_folder: Path, report_id: str, incident: str) -> Report:
    with locked(folder):
        r = _find(folder, report_id)
        r.incident = _incident_known(incidents_folder, incident)
        r.save(folder)
    return r


def told(folder: Path, report_id: str, at: float) -> Report:
    """The reporter was told back; once, and not before they reported."""
    with locked(folder):
        r = _find(folder, report_id)
        if r.told is not None:
            raise ValueError(f"report {report_id} was already answered")
        if at < r.at:
            raise ValueError(f"report {report_id} cannot be answered before it came in")
        r.told = at
        r.save(folder)
    return r
