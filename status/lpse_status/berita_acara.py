"""The Berita Acara Gangguan: the official record of an SPSE disruption, in the form LPSE units
issue it (e.g. LPSE Kabupaten Lebong, 2015), which the Pokja of every affected tender needs to
shift its schedule by the time lost.

- Number, place and date; the disruption's start and end **to the second**, from the probe's raw
  results (the first failed one, the first good one after), in the site's zone; its length and the
  calendar days it touched; cause and actions from the incident record.
- The tenders it touched: every stage that closed during it, and every bid upload window open
  during it, from SPSE's own schedule as the exporter read it with its read-only login (Prometheus
  keeps every stage open or closing within a day: lpse_spse_schedule_stage_*).
- The evidence: the probe's raw results around the disruption (CSV beside the document) and the
  queries, with their SHA-256, so anyone with the site's data can recompute the times.
- The legal basis is the site's to state (`status_board_berita_acara_legal_basis`): the rule in
  force on adjusting a tender's schedule after a technical disruption.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lpse_status.i18n import environment
from lpse_status.prom import Prometheus
from lpse_status.records import Incident, locked, write_json, write_text

DAYS = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")
MONTHS = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober",
          "November", "Desember")  # fmt: skip
ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII")
MARGIN_S = 900  # probe results kept as evidence before and after the disruption
LEGAL_BASIS = (
    "Sesuai ketentuan yang berlaku tentang keadaan kahar atau gangguan teknis dalam pemilihan secara elektronik "
    "(sebelumnya Peraturan Kepala LKPP Nomor 1 Tahun 2015 tentang E-Tendering), Pokja Pemilihan dapat melakukan "
    "penyesuaian jadwal sesuai dengan lamanya gangguan teknis tersebut."
)


@dataclass(frozen=True)
class Office:
    """Who issues it (the [berita_acara] settings)."""

    unit: str  # "LPSE Kota Contoh"
    place: str = ""  # where it is signed: "Kota Contoh"
    head_title: str = "Kepala LPSE"
    head_name: str = ""
    head_nip: str = ""
    number_format: str = "{seq:03d}/BA-GANGGUAN/LPSE/{month_roman}/{year}"
    legal_basis: str = LEGAL_BASIS
    upload_stages: str = r"(?i)(upload|unggah|pemasukan).*penawaran"

    @classmethod
    def from_dict(cls, d: dict[str, Any], unit: str) -> Office:
        known = {k: str(v) for k, v in d.items() if k in cls.__dataclass_fields__ and k != "unit" and v != ""}
        return cls(unit=str(d.get("unit") or unit), **known)


@dataclass(frozen=True)
class Stage:
    tender: str
    name: str
    stage: str
    opens: float
    closes: float
    why: str  # "ditutup selama gangguan" or "unggah penawaran sedang dibuka"


@dataclass
class Certificate:
    number: str
    incident: str
    issued_at: float
    start: float  # the first failed probe result
    end: float | None  # the first good one after it (None: not back yet)
    days: list[str]
    stages: list[Stage]
    queries: list[str]
    evidence_csv: str
    evidence_sha256: str = ""
    cause: str = ""
    actions: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float | None:
        return None if self.end is None else self.end - self.start


class BeritaAcaraError(ValueError):
    pass


def probe_results(prom: Prometheus, instance: str, start: float, end: float) -> tuple[str, list[tuple[float, float]]]:
    """The probe's raw results in (start, end], merged over the jobs that scrape it; and the query."""
    query = f'lpse_spse_up{{instance="{instance}"}}[{round((end - start) * 1000)}ms]'
    merged: dict[float, float] = {}
    for s in prom.query(query, at=end):
        for t, v in s.points:
            merged[t] = max(v, merged.get(t, 0.0))
    return query, sorted(merged.items())


def bounds(rows: list[tuple[float, float]], alert_start: float) -> tuple[float, float | None]:
    """The run of failed results the alert belongs to: its first result, and the first good one after."""
    before = [t for t, v in rows if t <= alert_start]
    if not before:
        raise BeritaAcaraError("no probe result before the alert: the disruption's start cannot be proven")
    last_up = max((t for t, v in rows if t <= alert_start and v >= 1), default=None)
    failed = [t for t, v in rows if v < 1 and (last_up is None or t > last_up)]
    if not failed:
        raise BeritaAcaraError("the probe shows no failed result around the alert")
    start = failed[0]
    end = next((t for t, v in rows if t > start and v >= 1), None)
    return start, end


def affected(prom: Prometheus, start: float, end: float, upload_stages: str) -> tuple[list[str], list[Stage]]:
    """Stages that closed during [start, end], and bid upload windows open during it, from what the
    exporter reported of SPSE's schedule in the two days before the end."""
    window = f"{round(end - start) + 2 * 86400}s"
    queries = [
        f"last_over_time(lpse_spse_schedule_stage_{edge}_timestamp_seconds[{window}])" for edge in ("opens", "closes")
    ]
    opens, closes = ({(s.labels.get("tender", ""), s.labels.get("name", ""), s.labels.get("stage", "")): s.points[0][1]
                      for s in prom.query(q, at=end)} for q in queries)  # fmt: skip
    upload = re.compile(upload_stages)
    out = []
    for key, closing in closes.items():
        opening = opens.get(key, closing)
        if start <= closing <= end:
            out.append(Stage(*key, opening, closing, "ditutup selama gangguan"))
        elif upload.search(key[2]) and opening < end and closing > start:
            out.append(Stage(*key, opening, closing, "unggah penawaran sedang dibuka"))
    return queries, sorted(out, key=lambda s: (s.closes, s.tender))


def calendar_days(start: float, end: float, tz: dt.tzinfo) -> list[str]:
    first, last = dt.datetime.fromtimestamp(start, tz).date(), dt.datetime.fromtimestamp(end, tz).date()
    return [(first + dt.timedelta(days=k)).isoformat() for k in range((last - first).days + 1)]


def _number(folder: Path, office: Office, incident: str, at: float, tz: dt.tzinfo) -> str:
    """The incident's number: kept when issued again, else the year's next."""
    for path in folder.glob("*.json"):
        d = json.loads(path.read_text())
        if d.get("incident") == incident:
            return str(d["number"])
    when = dt.datetime.fromtimestamp(at, tz)
    seq = 1 + sum(1 for p in folder.glob("*.json") if json.loads(p.read_text()).get("year") == when.year)
    return office.number_format.format(seq=seq, year=when.year, month=when.month, month_roman=ROMAN[when.month - 1])


def issue(prom: Prometheus, inc: Incident, office: Office, folder: Path, tz: dt.tzinfo, now: float) -> Certificate:
    """Work out the certificate of `inc` and keep its number (records/berita-acara/)."""
    recovered = inc.recovered or inc.resolved or now
    query, rows = probe_results(prom, inc.instance, inc.first_failure - MARGIN_S, min(now, recovered + MARGIN_S))
    start, end = bounds(rows, inc.alert_start)
    queries, stages = affected(prom, start, end or now, office.upload_stages)
    evidence = "time_utc,epoch_seconds,up\n" + "".join(
        f"{dt.datetime.fromtimestamp(t, dt.UTC):%Y-%m-%dT%H:%M:%S.%f}Z,{t:.3f},{int(v)}\n" for t, v in rows
    )
    all_queries = [query, *queries]
    digest = hashlib.sha256((evidence + "\n".join(all_queries) + "\n").encode()).hexdigest()
    with locked(folder):
        number = _number(folder, office, inc.id, now, tz)
        cert = Certificate(number, inc.id, now, start, end, calendar_days(start, end or now, tz), stages, all_queries,
                           evidence, digest, inc.cause_id, list(inc.actions))  # fmt: skip
        write_json(folder / f"{inc.id}.json", {"number": number, "incident": inc.id, "issued_at": now,
                                               "year": dt.datetime.fromtimestamp(now, tz).year,
                                               "evidence_sha256": digest})  # fmt: skip
    return cert


def _tanggal(ts: float, tz: dt.tzinfo) -> str:
    d = dt.datetime.fromtimestamp(ts, tz)
    return f"{DAYS[d.weekday()]}, {d.day} {MONTHS[d.month - 1]} {d.year}"


def _pukul(ts: float, tz: dt.tzinfo) -> str:
    d = dt.datetime.fromtimestamp(ts, tz)
    return f"{d.day} {MONTHS[d.month - 1]} {d.year} pukul {d:%H:%M:%S} {d.tzname()}"


def _lama(seconds: float) -> str:
    s = round(seconds)
    h, m, sec = s // 3600, s % 3600 // 60, s % 60
    return " ".join(p for p in (f"{h} jam" if h else "", f"{m} menit" if m else "", f"{sec} detik") if p)


def render_html(cert: Certificate, office: Office, site_url: str, tz: dt.tzinfo) -> str:
    """The certificate as HTML (templates/documents/berita_acara.html), every time in the site's zone."""
    issued = _tanggal(cert.issued_at, tz)
    stages = [asdict(s) | {"opens": _pukul(s.opens, tz), "closes": _pukul(s.closes, tz)} for s in cert.stages]
    days = ", ".join(_tanggal(dt.datetime.fromisoformat(d).replace(tzinfo=tz).timestamp(), tz) for d in cert.days)
    return (
        environment("id", "documents")
        .get_template("berita_acara.html")
        .render(cert=cert, office=office, site_url=site_url, issued=issued, issued_date=issued.split(", ", 1)[1],
                start=_pukul(cert.start, tz), end=_pukul(cert.end, tz) if cert.end else "",
                lama=_lama(cert.duration_s) if cert.duration_s is not None else "", days=days, stages=stages)
    )  # fmt: skip


def write(cert: Certificate, office: Office, site_url: str, tz: dt.tzinfo, out: Path, pdf: bool) -> list[Path]:
    """The HTML (and PDF) and the evidence CSV, named by the incident; written whole."""
    from lpse_status.report import write_pdf

    out.mkdir(parents=True, exist_ok=True)
    base = out / f"berita-acara-{cert.incident}"
    html = render_html(cert, office, site_url, tz)
    write_text(base.with_suffix(".html"), html)
    write_text(base.with_suffix(".csv"), cert.evidence_csv)
    write_text(base.with_suffix(".json"), json.dumps(asdict(cert) | {"evidence_csv": base.name + ".csv"},
                                                     indent=1, ensure_ascii=False) + "\n")  # fmt: skip
    paths = [base.with_suffix(".html"), base.with_suffix(".csv"), base.with_suffix(".json")]
    if pdf:
        write_pdf(html, base.with_suffix(".pdf"))
        paths.append(base.with_suffix(".pdf"))
    return paths
