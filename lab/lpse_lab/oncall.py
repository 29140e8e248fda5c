"""The on-call end of the lab: an SMTP relay and a Telegram stand-in on the lab gateway.

The SMTP relay is a real SMTP server (aiosmtpd) that, like a site's relay, demands STARTTLS
and a login; every message it accepts is delivered to a Maildir with the second it arrived,
so tests can measure fault-to-notification latency. The **Telegram stand-in** answers the
few Bot API methods Alertmanager calls (getMe, sendMessage) for one bot token and records
each message: the real api.telegram.org is not reachable from here. The same HTTPS server
takes the dead-man's-switch heartbeat (a webhook) that a site would send to an outside service.

Started by `lpse-lab up` (`python -m lpse_lab.oncall serve`); read by tests and `lpse-lab mail`.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import mailbox
import os
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs

from lpse_lab.pki import write_atomic

RECEIVED_HEADER = "X-Lab-Received"
T = TypeVar("T")


@dataclass(frozen=True)
class RelaySettings:
    address: str
    smtp_port: int
    https_port: int
    user: str
    password: str
    bot_token: str
    certfile: str
    keyfile: str

    @classmethod
    def load(cls, path: Path) -> RelaySettings:
        return cls(**json.loads(path.read_text()))

    def save(self, path: Path) -> None:
        write_atomic(path, json.dumps(self.__dict__).encode(), 0o600)


# --- what arrived -------------------------------------------------------------------


@dataclass(frozen=True)
class Mail:
    received: float
    sender: str
    recipients: tuple[str, ...]
    subject: str
    body: str


@dataclass(frozen=True)
class ChatMessage:
    received: float
    chat_id: str
    text: str


# Each message parsed once: tests poll the Maildir every quarter second while waiting for a mail,
# and a test run leaves hundreds in it (parsing them all on every poll kept a core busy).
_parsed: dict[tuple[Path, str], Mail] = {}


def _parse(raw: bytes) -> Mail:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    part = msg.get_body(preferencelist=("plain", "html"))
    body = part.get_content() if part is not None else ""
    rcpts = tuple(r.strip() for r in str(msg.get("X-Lab-Rcpt-To", "")).split(",") if r.strip())
    received = float(msg.get(RECEIVED_HEADER, "0"))
    return Mail(received, str(msg.get("X-Lab-Mail-From", "")), rcpts, str(msg["Subject"]), body)


def mails(state: Path, since: float = 0.0) -> list[Mail]:
    """Messages the relay accepted at or after `since` (epoch seconds), oldest first."""
    out = []
    box = mailbox.Maildir(state / "mail", factory=None, create=True)
    for key in box.iterkeys():
        # A Maildir name starts with the second it was delivered, which is after it was received:
        # one delivered before `since`'s second was received before `since`.
        delivered = key.split(".", 1)[0]
        if delivered.isdigit() and int(delivered) < int(since):
            continue
        if (state, key) not in _parsed:
            _parsed[state, key] = _parse(box.get_bytes(key))
        if (mail := _parsed[state, key]).received >= since:
            out.append(mail)
    return sorted(out, key=lambda m: m.received)


def _read_jsonl(path: Path, since: float) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["received"] >= since]


def chat_messages(state: Path, since: float = 0.0) -> list[ChatMessage]:
    return [
        ChatMessage(r["received"], str(r["chat_id"]), r["text"]) for r in _read_jsonl(state / "telegram.jsonl", since)
    ]


def heartbeats(state: Path, since: float = 0.0) -> list[float]:
    return [r["received"] for r in _read_jsonl(state / "heartbeat.jsonl", since)]


def wait_for(fetch: Callable[[], list[T]], match: Callable[[T], bool], timeout: float) -> T | None:
    """The first fetched item that matches, polling until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        for item in fetch():
            if match(item):
                return item
        if time.monotonic() > deadline:
            return None
        time.sleep(0.25)


# --- the servers ----------------------------------------------------------------------


class _Append:
    """Appends JSON lines under a lock (the HTTP server is threaded)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()

    def __call__(self, row: dict[str, Any]) -> None:
        with self.lock, self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())


def _https_handler(settings: RelaySettings, state: Path) -> type[BaseHTTPRequestHandler]:
    telegram = _Append(state / "telegram.jsonl")
    heartbeat = _Append(state / "heartbeat.jsonl")
    bot_path = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>\w+)$")

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _params(self) -> dict[str, Any]:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
            kind = self.headers.get("Content-Type", "")
            if kind.startswith("application/json"):
                return dict(json.loads(raw or b"{}"))
            return {k: v[0] for k, v in parse_qs(raw.decode()).items()}

        def do_POST(self) -> None:
            received = time.time()
            if self.path == "/heartbeat":
                self._params()
                heartbeat({"received": received})
                self._reply(200, {"ok": True})
                return
            m = bot_path.match(self.path.split("?", 1)[0])
            if not m:
                self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
                return
            if m["token"] != settings.bot_token:
                # What api.telegram.org answers for a wrong token.
                self._reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                return
            params = self._params()
            bot = {"id": 1, "is_bot": True, "first_name": "lpse-ops lab", "username": "lpse_lab_bot"}
            if m["method"] == "getMe":
                self._reply(200, {"ok": True, "result": bot})
            elif m["method"] == "sendMessage":
                if "chat_id" not in params or not params.get("text"):
                    self._reply(
                        400, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}
                    )
                    return
                telegram({"received": received, "chat_id": str(params["chat_id"]), "text": params["text"]})
                chat = {"id": int(params["chat_id"]), "type": "supergroup"}
                message = {"message_id": int(received * 1000), "date": int(received), "chat": chat}
                self._reply(200, {"ok": True, "result": message | {"text": params["text"], "from": bot}})
            else:
                self._reply(
                    400, {"ok": False, "error_code": 400, "description": f"method {m['method']} not in stand-in"}
                )

        do_GET = do_POST  # noqa: N815

        def log_message(self, *args: Any) -> None:  # requests are recorded above
            pass

    return Handler


def serve(settings: RelaySettings, state: Path) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(settings.certfile, settings.keyfile)
    box = mailbox.Maildir(state / "mail", create=True)

    class Deliver:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
            msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
            msg[RECEIVED_HEADER] = f"{time.time():.3f}"
            msg["X-Lab-Mail-From"] = envelope.mail_from
            msg["X-Lab-Rcpt-To"] = ", ".join(envelope.rcpt_tos)
            box.add(msg)  # Maildir: written to tmp/, then renamed into new/
            return "250 Message accepted for delivery"

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == settings.user
            and data.password.decode() == settings.password
        )
        return AuthResult(success=ok, handled=False)

    smtp = Controller(
        Deliver(),
        hostname=settings.address,
        port=settings.smtp_port,
        tls_context=tls,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
        # aiosmtpd's LOGIN prompts ("User Name") are not the usual "Username:" that Go's client
        # (Alertmanager) expects; PLAIN over STARTTLS is what relays commonly offer anyway.
        auth_exclude_mechanism=["LOGIN"],
    )
    smtp.start()
    https = ThreadingHTTPServer((settings.address, settings.https_port), _https_handler(settings, state))
    https.socket = tls.wrap_socket(https.socket, server_side=True)
    try:
        https.serve_forever()
    finally:
        smtp.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=["serve"])
    p.add_argument("--state", type=Path, required=True)
    args = p.parse_args()
    serve(RelaySettings.load(args.state / "relay.json"), args.state)


if __name__ == "__main__":
    main()
