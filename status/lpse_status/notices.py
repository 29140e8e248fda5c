"""Mail to the people who must know (Pokja, ULP; R14): when a public incident opens, is updated or
resolves, and when maintenance is announced. Through the site's relay (STARTTLS and a login, as
Alertmanager's mail).

A notice is written to the outbox first (`<records_dir>/outbox/`), then sent; a relay that is down
or refuses keeps it there and the board tries again every minute, so nothing is lost and the
command that posted the update does not wait on the mail. Sent notices move to
`<records_dir>/notices/`: who was told what, and when (evidence, R17).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import smtplib
import ssl
import time
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from lpse_status.incidents import AFFECTS, SEVERITIES, STATES
from lpse_status.records import Incident, locked, write_json

log = logging.getLogger("lpse_status")


@dataclass(frozen=True)
class MailSettings:
    to: list[str] = field(default_factory=list)  # empty: no notices
    lkpp_to: str = ""  # LKPP's contact for escalations (R15)
    relay: str = ""  # host:port
    sender: str = ""
    username: str = ""
    password: str = ""
    require_tls: bool = True

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MailSettings:
        return cls(to=[str(a) for a in d.get("to", [])], lkpp_to=str(d.get("lkpp_to", "")),
                   relay=str(d.get("relay", "")), sender=str(d.get("from", "")),
                   username=str(d.get("username", "")), password=str(d.get("password", "")),
                   require_tls=bool(d.get("require_tls", True)))  # fmt: skip


@dataclass
class Notice:
    id: str
    subject: str
    body: str
    to: list[str]
    queued: float
    attempts: int = 0
    last_error: str = ""
    sent: float | None = None


class NoticeError(RuntimeError):
    pass


def _when(ts: float, tz: dt.tzinfo) -> str:
    return dt.datetime.fromtimestamp(ts, tz).strftime("%d-%m-%Y %H:%M %Z")


def incident_notice(inc: Incident, site: str, page: str, tz: dt.tzinfo) -> tuple[str, str]:
    """Subject and body for an incident's latest update: Bahasa Indonesia first, English below."""
    u = inc.updates[-1]
    state = STATES[str(u["state"])]
    severity = SEVERITIES.get(inc.severity, SEVERITIES["major"])
    affects_id = ", ".join(AFFECTS[a][0] for a in inc.affects if a in AFFECTS)
    affects_en = ", ".join(AFFECTS[a][1] for a in inc.affects if a in AFFECTS)
    subject = f"[{site}] {state[0]}: {inc.summary_id}"
    body = (
        f"{site} — {inc.summary_id}\n\nStatus: {state[0]}\nTingkat: {severity[0]}\nTerdampak: {affects_id}\n"
        f"Sejak: {_when(inc.first_failure, tz)}\nKabar ({_when(float(u['at']), tz)}): {u['message_id']}\n\n"
        f"— English —\n{inc.summary_en or inc.summary_id}\nStatus: {state[1]}\nSeverity: {severity[1]}\n"
        f"Affected: {affects_en}\nUpdate: {u['message_en'] or u['message_id']}\n\n"
        f"Halaman status / status page: {page}\nGangguan / incident: {inc.id}\n"
    )
    return subject, body


def maintenance_notice(record: dict[str, Any], site: str, page: str, tz: dt.tzinfo) -> tuple[str, str]:
    start = dt.datetime.fromisoformat(str(record["start"]).replace("Z", "+00:00")).timestamp()
    end = dt.datetime.fromisoformat(str(record["end"])).timestamp()
    subject = f"[{site}] Pemeliharaan SPSE: {_when(start, tz)} - {_when(end, tz)}"
    body = (
        f"{site} — pemeliharaan SPSE / SPSE maintenance\n\nMulai / start: {_when(start, tz)}\n"
        f"Perkiraan selesai / expected end: {_when(end, tz)}\nAlasan: {record.get('reason_id', '')}\n"
        f"Reason: {record.get('reason_en', '')}\n\nSelama pemeliharaan SPSE tidak dapat diakses. / SPSE cannot be "
        f"reached during maintenance.\nHalaman status / status page: {page}\n"
    )
    return subject, body


def queue(records: Path, mail: MailSettings, key: str, subject: str, body: str, now: float) -> Notice | None:
    """Put a notice in the outbox (nothing when no one is to be told); `deliver` sends it."""
    if not mail.to:
        return None
    stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    notice = Notice(f"{stamp}-{key}"[:120], subject, body, list(mail.to), now)
    outbox = records / "outbox"
    outbox.mkdir(parents=True, exist_ok=True)
    write_json(outbox / f"{notice.id}.json", asdict(notice))  # a new name, written whole: no lock needed
    return notice


def send(mail: MailSettings, notice: Notice, timeout: float = 30, attachments: tuple[Path, ...] = ()) -> None:
    host, _, port = mail.relay.rpartition(":")
    if not host or not port.isdigit():
        raise NoticeError(f"no mail relay (host:port) set: {mail.relay!r}; set status_board_mail_relay")
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = mail.sender, ", ".join(notice.to), notice.subject
    msg["Message-ID"] = f"<{notice.id}@lpse-status>"
    msg.set_content(notice.body)
    for path in attachments:
        msg.add_attachment(path.read_bytes(), maintype="application", subtype="octet-stream", filename=path.name)
    try:
        with smtplib.SMTP(host, int(port), timeout=timeout) as smtp:
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            elif mail.require_tls:
                raise NoticeError(f"the relay {mail.relay} offers no STARTTLS (status_board_mail_require_tls)")
            if mail.username:
                smtp.login(mail.username, mail.password)
            smtp.send_message(msg, from_addr=mail.sender, to_addrs=notice.to)
    except (OSError, smtplib.SMTPException) as e:
        raise NoticeError(f"relay {mail.relay}: {e.__class__.__name__}: {e}") from None


def deliver(records: Path, mail: MailSettings, now: float | None = None) -> list[str]:
    """Send what is in the outbox, oldest first; a failure stays there with its error (tried again
    next time). Returns the ids sent."""
    outbox, sent_dir = records / "outbox", records / "notices"
    sent = []
    with locked(outbox):
        for path in sorted(outbox.glob("*.json")):
            try:
                notice = Notice(**json.loads(path.read_text()))
            except (OSError, ValueError, TypeError) as e:
                log.warning("notices: %s unreadable (%s), left in the outbox", path.name, e)
                continue
            try:
                send(mail, notice)
            except NoticeError as e:
                notice.attempts += 1
                notice.last_error = str(e)
                write_json(path, asdict(notice))
                log.warning("notices: %s not sent (attempt %d): %s", notice.id, notice.attempts, e)
                break  # the relay is down: the rest waits too, in order
            notice.sent = now or time.time()
            sent_dir.mkdir(parents=True, exist_ok=True)
            write_json(sent_dir / path.name, asdict(notice))
            os.unlink(path)
            sent.append(notice.id)
            log.info("notices: %s sent to %s", notice.id, ", ".join(notice.to))
    return sent


def pending(records: Path) -> list[Notice]:
    outbox = records / "outbox"
    out = []
    for path in sorted(outbox.glob("*.json")) if outbox.is_dir() else []:
        try:
            out.append(Notice(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue
    return out


@dataclass(frozen=True)
class Board:
    """What a notice needs to know of the status board (its settings)."""

    records: Path
    mail: MailSettings
    site: str
    page: str  # the public page's address, in every notice
    tz: dt.tzinfo


def tell(board: Board, key: str, subject: str, body: str, now: float, send_now: bool = True) -> str:
    """Queue a notice and (with `send_now`) try to send it at once; a sentence for the one who
    caused it."""
    notice = queue(board.records, board.mail, key, subject, body, now)
    if notice is None:
        return "no notice: nobody to tell (status_board_notice_to is empty)"
    if not send_now:
        return f"notice to {', '.join(notice.to)} queued"
    if notice.id in deliver(board.records, board.mail, now):
        return f"notice sent to {', '.join(notice.to)}"
    left = next((n for n in pending(board.records) if n.id == notice.id), None)
    why = left.last_error if left and left.last_error else "the outbox is busy"
    return f"notice queued, not sent yet ({why}); the status board tries again every minute"


def incident_updated(board: Board, inc: Incident, now: float, send_now: bool = True) -> str:
    subject, body = incident_notice(inc, board.site, board.page, board.tz)
    return tell(board, f"{inc.id}-{len(inc.updates)}", subject, body, now, send_now)


def maintenance_announced(board: Board, record: dict[str, Any], key: str, now: float) -> str:
    subject, body = maintenance_notice(record, board.site, board.page, board.tz)
    return tell(board, f"maintenance-{key}", subject, body, now)
