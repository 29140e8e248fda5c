"""The public status page, rendered from a Jinja2 template (templates/status/public.html) in
Bahasa Indonesia or English (lpse_status.i18n)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from lpse_status.availability import Day
from lpse_status.i18n import LANGUAGES, catalogue, environment
from lpse_status.incidents import AFFECTS, SEVERITIES, STATES
from lpse_status.opendata import published

if TYPE_CHECKING:
    from lpse_status.web import Now, Settings

STATE_TEXT = {
    "up": "SPSE berjalan normal",
    "down": "SPSE sedang terganggu",
    "maintenance": "SPSE sedang dalam pemeliharaan",
    "unknown": "Status SPSE tidak diketahui (pemantauan tidak menerima data)",
}


def local_time(ts: float, tz: dt.tzinfo) -> str:
    """A moment as the pages show it: "24-11-2026 22:00 WIB"."""
    return dt.datetime.fromtimestamp(float(ts), tz).strftime(f"%d-%m-%Y %H:%M {tz.tzname(None)}")


def _duration(seconds: float) -> str:
    m = round(seconds / 60)
    return f"{m // 60} h {m % 60} min" if m >= 60 else f"{m} min"


def _day_kind(d: Day, target: float) -> str:
    if d.up_share is None:
        return "none"
    if d.down_s < 60:
        return "full"  # under a minute down: nothing a bidder would have seen
    return "ok" if d.up_share >= target else "bad"


def _bar(d: Day, target: float, _: Any) -> dict[str, Any]:
    """A day's bar: its height the day's availability (a bad day stands out), its colour green,
    yellow (down some minutes, still at the target) or red (under it), grey without data; what it
    says on hover, focus or tap (a link to itself: :target), and to a screen reader."""
    date = d.date.strftime("%d-%m-%Y")
    if d.up_share is None:
        said = f"{date}: {_('belum ada data')}"
    else:
        said = _("%(date)s: %(share).2f%%, %(down)d menit terganggu") % {
            "date": date, "share": d.up_share * 100, "down": round(d.down_s / 60)}  # fmt: skip
        if d.maintenance_s:
            said += f" ({_('%(minutes)d menit pemeliharaan') % {'minutes': round(d.maintenance_s / 60)}})"
    height = 100 if d.up_share is None else max(8, round(100 * d.up_share**8))
    return {"kind": _day_kind(d, target), "iso": d.date.isoformat(), "date": date, "said": said, "height": height}


def render(s: Settings, lang: str, snap: Now, style: str) -> str:
    """The page in `lang` (id or en) for the state in `snap`."""
    env, n = environment(lang, "status"), LANGUAGES.index(lang)
    _ = catalogue(lang).gettext
    tz = s.timezone

    def when(ts: float) -> str:
        return local_time(ts, tz)

    def words(indonesian: str, english: str) -> str:
        """What on-call wrote: English where it was given, Bahasa Indonesia otherwise."""
        return english if lang == "en" and english else indonesian

    now, windows = snap.at, snap.windows
    return env.get_template("public.html").render(
        lang=lang,
        site=s.site_name,
        style=Markup(style),
        state=snap.state,
        state_text=_(STATE_TEXT[snap.state]),
        now=now,
        notices=[m for m in windows if m.active(now) or (snap.state != "maintenance" and now < m.start)],
        live=[i for i in snap.incidents if i.live],
        figures=snap.figures,
        step=s.step_s,
        target=s.target,
        days=[_bar(d, s.target, _) for d in snap.days],
        months=published(s.records_dir / "open-data"),
        past=[i for i in snap.incidents if not i.live],
        past_windows=list(reversed([m for m in windows if m.end <= now][-5:])),
        words=words,
        when=when,
        duration=_duration,
        state_name=lambda state: STATES[str(state)][n],
        severity_name=lambda severity: SEVERITIES.get(severity, SEVERITIES["major"])[n],
        affects_names=lambda affects: ", ".join(AFFECTS[a][n] for a in affects if a in AFFECTS),
    )
