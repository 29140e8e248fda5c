"""Mail notices of public incidents and maintenance (lpse_status.notices) through a real SMTP server
(aiosmtpd on this machine; the lab tests go through the lab's relay with STARTTLS and a login): a
relay that is down, or not safe, keeps the notice in the outbox with the reason, and the next
delivery sends it; nothing is sent twice."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from lpse_status import notices
from lpse_status.incidents import open_incident, post_update
from lpse_status.notices import Board, MailSettings

WIB = dt.timezone(dt.timedelta(hours=7), "WIB")


class Inbox:
    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode()))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def relay() -> Iterator[tuple[Controller, Inbox]]:
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    yield smtp, inbox
    smtp.stop()


def test_an_update_reaches_the_list_and_a_dead_relay_loses_nothing(
    relay: tuple[Controller, Inbox], tmp_path: Path
) -> None:
    smtp, inbox = relay
    mail = MailSettings(to=["pokja@lpse.test", "ulp@lpse.test"], relay=f"127.0.0.1:{smtp.port}",
                        sender="status@lpse.test", require_tls=False)  # fmt: skip
    board = Board(tmp_path, mail, "LPSE Uji", "https://status.lpse.test/", WIB)
    at = dt.datetime(2026, 11, 24, 10, 0, tzinfo=WIB).timestamp()
    inc = open_incident(tmp_path / "incidents", "Unggah penawaran gagal", "Bid uploads fail", "major", ["upload"],
                        "Sedang diperiksa", "", "sari", at)  # fmt: skip

    # The relay is down: the notice stays, with why.
    said = notices.incident_updated(board, inc, at)
    assert said.startswith("notice queued, not sent yet (relay 127.0.0.1:") and "every minute" in said
    (waiting,) = notices.pending(tmp_path)
    assert waiting.attempts == 1 and "Connection refused" in waiting.last_error and not inbox.mails

    smtp.start()
    inc = post_update(tmp_path / "incidents", inc.id, "identified", "Disk penuh", "Disk full", "sari", at + 600)
    assert notices.incident_updated(board, inc, at + 600) == "notice sent to pokja@lpse.test, ulp@lpse.test"
    assert [m[1] for m in inbox.mails] == [["pokja@lpse.test", "ulp@lpse.test"]] * 2, "the waiting one went first"
    first, second = (m[2] for m in inbox.mails)
    assert "Subject: [LPSE Uji] Sedang diselidiki: Unggah penawaran gagal" in first
    assert "Subject: [LPSE Uji] Penyebab diketahui: Unggah penawaran gagal" in second
    assert "Kabar (24-11-2026 10:10 WIB): Disk penuh" in second and "Update: Disk full" in second
    assert "https://status.lpse.test/" in second and "Unggah dokumen penawaran" in second
    assert notices.pending(tmp_path) == [] and len(list((tmp_path / "notices").glob("*.json"))) == 2
    assert notices.deliver(tmp_path, mail) == [] and len(inbox.mails) == 2, "nothing is sent twice"


def test_a_relay_without_starttls_is_refused_when_tls_is_required(
    relay: tuple[Controller, Inbox], tmp_path: Path
) -> None:
    smtp, inbox = relay
    smtp.start()
    mail = MailSettings(to=["pokja@lpse.test"], relay=f"127.0.0.1:{smtp.port}", sender="status@lpse.test")
    board = Board(tmp_path, mail, "LPSE Uji", "https://status.lpse.test/", WIB)
    record = {"start": "2026-11-24T03:00:00Z", "end": "2026-11-24T22:00:00+07:00", "reason_id": "Ganti disk",
              "reason_en": "Disk swap"}  # fmt: skip
    said = notices.maintenance_announced(board, record, "1764000000", 0)
    assert "offers no STARTTLS" in said and not inbox.mails
    (waiting,) = notices.pending(tmp_path)
    assert waiting.subject == "[LPSE Uji] Pemeliharaan SPSE: 24-11-2026 10:00 WIB - 24-11-2026 22:00 WIB"
    # Nobody to tell: nothing queued, and the sentence says why.
    quiet = Board(tmp_path / "q", MailSettings(), "LPSE Uji", "", WIB)
    assert notices.maintenance_announced(quiet, record, "1", 0).startswith("no notice: nobody to tell")
    assert not (tmp_path / "q").exists()
