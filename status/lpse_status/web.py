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
from http import HTTPStatus
from pathlib import Path
from typing import Any

from lpse_status import feeds, opendata, ops, public
from lpse_status.availability import Availability, Day, availability, daily, first_probe
from lpse_status.berita_acara import Office
from lpse_status.incidents import on_notification
from lpse_status.maintenance import Maintenance, maintenance_windows, site_zone
from lpse_status.notices import Board, MailSettings, deliver
from lpse_status.opendata import completed_months, load_key
from lpse_status.power import record_power_cuts
from lpse_status.prom import Prometheus, PrometheusError
from lpse_status.records import Incident, incidents

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


def ops_page(s: Settings, hours: float, lang: str = "id", now: float | None = None) -> str:
    """The operations view over the last `hours`: lpse_status.ops."""
    return ops.render(s, hours, now or time.time(), lang, STYLE)


def language(query: dict[str, list[str]]) -> str:
    """The page's language from ?lang= (Bahasa Indonesia unless English is asked for)."""
    return "en" if query.get("lang", ["id"])[0] == "en" else "id"


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
                return send(start_response, 200, public_page(s, language(q), cache=self.figures))
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
                return send(start_response, 200, ops_page(s, hours, language(q)))
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
            done = ops.action(self.s.board, form, login, time.time())
        except (ValueError, KeyError) as e:
            return send(start_response, 400, f"{e.args[0] if e.args else e}\n", "text/plain")
        self.wake.set()
        log.info("ops form: %s by %s", done, login)
        back = "/ops?lang=en" if language(form) == "en" else "/ops"
        start_response("303 See Other", [("Location", back), ("Content-Length", "0")])
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
