"""LKPP's national page, a WSGI application served by waitress on localhost (roles/national_page);
nginx in front asks for an LKPP reader's login. Bahasa Indonesia first, English with ?lang=en.

  /              every site in one table: up, down, under maintenance or silent now, availability
                 over 30 days against the target, backup freshness, last drill, days of disk left,
                 release and configuration drift; ?provinsi= filters, ?sort=&desc= orders
  /situs/<name>  one site's last 90 days, a bar and a row a day
  /kueri         an ad-hoc query (MetricsQL) over a chosen range: a chart and a table of the series,
                 and the same query's JSON from the store's API (no JavaScript; vmui is at /vmui/)
  /healthz       200 when the national store answers

Links are relative: the page works under any prefix nginx gives it (/nasional/ on LKPP's host).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import waitress

from lpse_status.i18n import LANGUAGES, catalogue, environment
from lpse_status.national import SORT_KEYS, Day, Row, Settings, history, sort_rows, table
from lpse_status.prom import Prometheus, PrometheusError, QueryRefusedError, Series
from lpse_status.svg import line_chart

log = logging.getLogger("lpse_status.national")
# The ad-hoc query's ranges, and how many series its chart and table show.
QUERY_RANGES = {"1h": 3600, "6h": 6 * 3600, "1d": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "90d": 90 * 86400}
QUERY_POINTS = 240  # points a series over any range
CHART_SERIES = 8
TABLE_SERIES = 200
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


# A site's state now, and the pages' error messages (Bahasa Indonesia; English in the catalogue).
STATE_NAMES = {"up": "Berjalan", "down": "Mati", "maintenance": "Pemeliharaan", "silent": "Tidak mengirim"}
ERRORS = {
    "not_found": "Halaman tidak ditemukan.",
    "unknown_site": "Situs ini tidak dikenal dan tidak mengirim data dalam 30 hari terakhir.",
    "store_down": "Penyimpanan telemetri nasional tidak menjawab; coba lagi sebentar lagi.",
}


class Page:
    def __init__(self, s: Settings, store: Prometheus, clock: Callable[[], float] = time.time) -> None:
        self.s, self.store, self.clock = s, store, clock

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        arg = {k: v[-1] for k, v in query.items()}
        lang = arg.get("lang", "id") if arg.get("lang") in LANGUAGES else "id"
        try:
            if path == "/healthz":
                self.store.query("vector(1)")
                return self._send(start_response, "200 OK", b"ok\n", "text/plain")
            if path == "/":
                return self._html(start_response, "200 OK", self.table_page(arg, lang))
            if path.startswith("/situs/"):
                page = self.site_page(urllib.parse.unquote(path.removeprefix("/situs/")), lang)
                if page is None:
                    return self._html(
                        start_response, "404 Not Found", self.error_page("unknown_site", lang, 404, "../")
                    )
                return self._html(start_response, "200 OK", page)
            if path == "/kueri":
                return self._html(start_response, "200 OK", self.query_page(arg, lang))
            return self._html(start_response, "404 Not Found", self.error_page("not_found", lang, 404))
        except PrometheusError as e:
            log.error("national store: %s", e)
            return self._html(start_response, "503 Service Unavailable", self.error_page("store_down", lang, 503))

    # --- pages ---------------------------------------------------------------------------

    def table_page(self, arg: dict[str, str], lang: str) -> str:
        now = self.clock()
        rows = table(self.store, self.s, now)
        provinces = sorted({r.site.province for r in rows if r.site.province})
        province = arg.get("provinsi", "")
        shown = [r for r in rows if not province or r.site.province == province]
        key = arg.get("sort", "state") if arg.get("sort") in SORT_KEYS else "state"
        descending = arg.get("desc") == "1"
        shown = sort_rows(shown, key, descending)
        counts = {state: sum(1 for r in shown if r.state == state) for state in ("up", "maintenance", "down", "silent")}

        def link(**change: str) -> str:
            keep = {
                "lang": lang if lang != "id" else "",
                "provinsi": province,
                "sort": key,
                "desc": "1" if descending else "",
            }
            keep |= change
            return "?" + urllib.parse.urlencode({k: v for k, v in keep.items() if v})

        sort_links = {k: link(sort=k, desc="" if (k != key or descending) else "1") for k in SORT_KEYS}
        return self._render(
            "table.html",
            lang,
            rows=[self._row(r, now, lang) for r in shown],
            provinces=provinces,
            province=province,
            sort=key,
            descending=descending,
            sort_links=sort_links,
            counts=counts,
            total=len(shown),
            other_lang_link=link(lang="en" if lang == "id" else ""),
            now=self._when(now),
        )

    def site_page(self, name: str, lang: str) -> str | None:
        """None for a site that is neither expected nor heard from in the last 30 days."""
        now = self.clock()
        row = next((r for r in table(self.store, self.s, now) if r.site.name == name), None)
        if row is None:
            return None
        days = history(self.store, self.s, name, now)
        known = [d.availability for d in days if d.availability is not None]
        back = "?lang=en" if lang == "en" else "?"
        return self._render(
            "site.html",
            lang,
            row=self._row(row, now, lang),
            days=[self._day(d, lang) for d in reversed(days)],
            bars=self._bars(days, lang),
            below_target=sum(
                1 for d in days if d.availability is not None and d.availability < self.s.availability_target
            ),
            mean=sum(known) / len(known) if known else None,
            back_link="../" + back,
            other_lang_link="?lang=en" if lang == "id" else "?",
            now=self._when(now),
        )

    def query_page(self, arg: dict[str, str], lang: str) -> str:
        """An analyst's own query: the series it returns over the range, charted and tabled; a
        query the store refuses is shown with the store's reason."""
        now, expr = self.clock(), arg.get("q", "").strip()
        span = arg.get("rentang", "1d") if arg.get("rentang") in QUERY_RANGES else "1d"
        seconds = QUERY_RANGES[span]
        step = max(60, seconds // QUERY_POINTS)
        found, refused = [], ""
        if expr:
            try:
                found = self.store.query_range(expr, now - seconds, now, step)
            except QueryRefusedError as e:
                refused = str(e).split(": ", 1)[-1]
        found.sort(key=lambda s: sorted(s.labels.items()))
        named = [(_labels(s.labels), s) for s in found]
        chart = line_chart(expr, [(n, s.points) for n, s in named[:CHART_SERIES]], ymin=None) if found else ""
        api = {"query": expr, "start": f"{now - seconds:.0f}", "end": f"{now:.0f}", "step": str(step)}
        keep = {"lang": "en"} if lang == "en" else {}
        other = {"q": expr, "rentang": span, "lang": "" if keep else "en"}
        return self._render(
            "query.html",
            lang,
            expr=expr,
            span=span,
            spans=list(QUERY_RANGES),
            refused=refused,
            total=len(found),
            chart=chart,
            charted=min(len(found), CHART_SERIES),
            series=[_summary(n, s) for n, s in named[:TABLE_SERIES] if s.points],
            api_link="../api/v1/query_range?" + urllib.parse.urlencode(api),
            back_link="./" + ("?lang=en" if lang == "en" else ""),
            other_lang_link="?" + urllib.parse.urlencode({k: v for k, v in other.items() if v}),
            lang_field=keep,
            now=self._when(now),
        )

    def error_page(self, what: str, lang: str, code: int, back: str = "./") -> str:
        message = catalogue(lang).gettext(ERRORS[what])
        return self._render("error.html", lang, message=message, code=code, back_link=back, other_lang_link="?", now="")

    # --- what the templates show ---------------------------------------------------------

    def _row(self, r: Row, now: float, lang: str) -> dict[str, Any]:
        _ = catalogue(lang).gettext
        target = self.s.availability_target
        return {
            "name": r.site.name,
            "title": r.site.title,
            "province": r.site.province,
            "state": r.state,
            "state_text": _(STATE_NAMES[r.state]),
            "last_seen": self._when(r.last_seen) if r.last_seen else _("belum pernah"),
            "silent_for": self._duration(now - r.last_seen, _) if r.last_seen else "",
            "availability": _percent(r.availability_30d),
            "availability_ok": None if r.availability_30d is None else r.availability_30d >= target,
            "backup": self._duration(r.backup_age_s, _) if r.backup_age_s is not None else "—",
            "backup_ok": None if r.backup_age_s is None else r.backup_age_s <= self.s.backup_max_age_s,
            "drill": _drill(r.drill_success, _),
            "drill_ok": r.drill_success,
            "rto": self._duration(r.drill_rto_s, _) if r.drill_rto_s is not None else "",
            "disk": _disk_days(r.disk_days, _),
            "disk_ok": None if r.disk_days is None else r.disk_days >= self.s.disk_days_warning,
            "version": r.version or "—",
            "fingerprint": r.fingerprint,
            "drift": r.drift,
            "critical": None if r.critical is None else int(r.critical),
        }

    def _day(self, d: Day, lang: str) -> dict[str, Any]:
        _ = catalogue(lang).gettext
        return {
            "date": d.start.strftime("%Y-%m-%d"),
            "availability": _percent(d.availability),
            "availability_ok": None if d.availability is None else d.availability >= self.s.availability_target,
            "availability_all": _percent(d.availability_all),
            "reported": _percent(d.reported, 0),
            "maintenance": _percent(d.maintenance, 1),
            "backup": self._duration(d.backup_age_s, _) if d.backup_age_s is not None else "—",
            "backup_ok": None if d.backup_age_s is None else d.backup_age_s <= self.s.backup_max_age_s,
            "drill": _drill(d.drill_success, _),
            "disk": _disk_days(d.disk_days, _),
            "critical": "—" if d.critical is None else f"{d.critical:.0f}",
        }

    def _bars(self, days: list[Day], lang: str) -> list[dict[str, Any]]:
        """One bar a day, its height the day's availability on a scale from 90 % (anything lower
        is a full-height red bar): the target's neighbourhood is where the differences are."""
        _, out = catalogue(lang).gettext, []
        for i, d in enumerate(days):
            a = d.availability
            if a is None:
                colour, height, text = "none", 100.0, _("tidak ada data")
            else:
                colour = "ok" if a >= self.s.availability_target else "bad"
                height = 100.0 if a < 0.9 else max(4.0, (a - 0.9) / 0.1 * 100)
                height = 100.0 if colour == "bad" else height
                text = f"{_percent(a)} ({_('data diterima')} {_percent(d.reported, 0)})"
            out.append({"x": i * 8, "height": height, "colour": colour, "title": f"{d.start:%Y-%m-%d}: {text}"})
        return out

    def _duration(self, seconds: float | None, _: Callable[[str], str]) -> str:
        if seconds is None:
            return "—"
        if seconds < 3600:
            return f"{seconds / 60:.0f} {_('menit')}"
        if seconds < 2 * 86400:
            return f"{seconds / 3600:.1f} {_('jam')}"
        return f"{seconds / 86400:.0f} {_('hari')}"

    def _when(self, ts: float | None) -> str:
        if ts is None:
            return ""
        return dt.datetime.fromtimestamp(ts, self.s.timezone).strftime("%Y-%m-%d %H:%M %Z")

    def _render(self, template: str, lang: str, **values: Any) -> str:
        _ = catalogue(lang).gettext
        state_names = {state: _(name) for state, name in STATE_NAMES.items()}
        return (
            environment(lang, "national")
            .get_template(template)
            .render(lang=lang, target=_percent(self.s.availability_target), state_names=state_names, **values)
        )

    @staticmethod
    def _html(start_response: StartResponse, status: str, body: str) -> list[bytes]:
        return Page._send(start_response, status, body.encode(), "text/html; charset=utf-8")

    @staticmethod
    def _send(start_response: StartResponse, status: str, body: bytes, kind: str) -> list[bytes]:
        start_response(
            status,
            [("Content-Type", kind), ("Content-Length", str(len(body))), ("Cache-Control", "no-store"),
             ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'"),
             ("X-Content-Type-Options", "nosniff")],
        )  # fmt: skip
        return [body]


def _disk_days(days: float | None, _: Callable[[str], str]) -> str:
    if days is None:
        return "—"
    return _("tidak terisi") if days >= 3650 else f"{days:.0f}"  # ten years and more: not filling


def _drill(passed: bool | None, _: Callable[[str], str]) -> str:
    return "—" if passed is None else _("lulus") if passed else _("GAGAL")


def _summary(name: str, s: Series) -> dict[str, Any]:
    values = [v for _, v in s.points]
    return {"labels": name, "last": values[-1], "min": min(values), "max": max(values), "points": len(values)}


def _labels(labels: dict[str, str]) -> str:
    name = labels.get("__name__", "")
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{rest}}}" if rest or not name else name


def _percent(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v * 100:.{digits}f} %"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="lpse-national-page", description="LKPP's national page (localhost; nginx in front)"
    )
    p.add_argument("--config", type=Path, default=Path("/etc/lpse-national/page.toml"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        s = Settings.load(args.config)
    except (OSError, KeyError, ValueError) as e:
        print(f"lpse-national-page: {args.config}: {e.__class__.__name__}: {e} — see status/README.md", file=sys.stderr)
        return 2
    host, port = s.listen.rsplit(":", 1)
    waitress.serve(Page(s, Prometheus(s.store_url)), host=host, port=int(port), threads=4, ident="lpse-national-page")
    return 0


if __name__ == "__main__":
    sys.exit(main())
