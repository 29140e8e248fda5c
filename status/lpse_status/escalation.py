"""Escalation to LKPP (R15): one archive with what LKPP needs to help, mailed to the LKPP contact.

`lpse-status escalate INCIDENT --attach <diagnose bundle>` (from the checkout: `fab escalate
INCIDENT <host>`, which makes the bundle on the host first) packs the incident's timeline (its
record and the postmortem: timeline, graphs, queries), its Berita Acara Gangguan (HTML, PDF,
evidence) and the diagnose bundle into `eskalasi-<incident>.tar.gz`, and mails it to
`status_board_lkpp_contact` through the site's relay. A relay that refuses leaves the archive on
disk and says where, so it can go another way.
"""

from __future__ import annotations

import datetime as dt
import json
import tarfile
import time
from dataclasses import asdict
from pathlib import Path

from lpse_status import berita_acara
from lpse_status.incidents import postmortem
from lpse_status.notices import MailSettings, Notice, NoticeError, send
from lpse_status.prom import Prometheus
from lpse_status.records import Incident, write_text


class EscalationError(RuntimeError):
    pass


def pack(inc: Incident, prom: Prometheus, office: berita_acara.Office, records: Path, site: str, page: str,
         tz: dt.tzinfo, step: float, attach: list[Path], out: Path, now: float) -> tuple[Path, str]:  # fmt: skip
    """The archive, and what the Berita Acara part holds (its number, or why there is none)."""
    missing = [str(p) for p in attach if not p.is_file()]
    if missing:
        raise EscalationError(f"cannot attach {', '.join(missing)}: no such file")
    work = out / f"eskalasi-{inc.id}"
    work.mkdir(parents=True, exist_ok=True)
    write_text(work / "gangguan.json", json.dumps(asdict(inc), indent=1, ensure_ascii=False) + "\n")
    write_text(work / "kronologi.html", postmortem(inc, prom, site, tz, step))
    try:
        cert = berita_acara.issue(prom, inc, office, records / "berita-acara", tz, now)
        berita_acara.write(cert, office, page or site, tz, work, pdf=True)
        said = f"Berita Acara Gangguan {cert.number}"
    except (berita_acara.BeritaAcaraError, RuntimeError) as e:  # no failed probe: a report only
        said = f"tanpa Berita Acara Gangguan ({e})"
        write_text(work / "berita-acara-TIDAK-DIBUAT.txt", f"{e}\n")
    archive = out / f"eskalasi-{inc.id}.tar.gz"
    tmp = archive.with_name(f".{archive.name}.tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for path in sorted(work.iterdir()):
            tar.add(path, arcname=f"eskalasi-{inc.id}/{path.name}")
        for path in attach:
            tar.add(path, arcname=f"eskalasi-{inc.id}/{path.name}")
    tmp.replace(archive)
    return archive, said


def mail(archive: Path, inc: Incident, said: str, mail: MailSettings, site: str, tz: dt.tzinfo) -> str:
    if not mail.lkpp_to:
        raise EscalationError(f"no LKPP contact (status_board_lkpp_contact): the archive is at {archive}")
    since = dt.datetime.fromtimestamp(inc.first_failure, tz).strftime("%d-%m-%Y %H:%M:%S %Z")
    subject = f"[{site}] Eskalasi gangguan SPSE ke LKPP: {inc.summary_id or inc.alertname} ({since})"
    body = (
        f"Kepada LKPP,\n\n{site} meneruskan gangguan SPSE berikut untuk ditangani bersama (R15).\n\n"
        f"Gangguan: {inc.summary_id or inc.alertname} ({inc.id})\nSejak: {since}\n"
        f"Status: {inc.state or ('selesai' if inc.resolved else 'berlangsung')}\nLampiran: {archive.name} — kronologi, "
        f"{said}, bundel diagnosa server.\n\n— English —\n{site} escalates this SPSE disruption to LKPP: "
        f"{inc.summary_en or inc.summary_id or inc.alertname}, since {since}. Attached: timeline, the disruption "
        "record, the server's diagnose bundle.\n"
    )
    notice = Notice(f"eskalasi-{inc.id}-{int(time.time())}", subject, body, [mail.lkpp_to], time.time())
    try:
        send(mail, notice, timeout=120, attachments=(archive,))
    except NoticeError as e:
        raise EscalationError(f"{e}; the archive is at {archive}, send it another way") from e
    return mail.lkpp_to
