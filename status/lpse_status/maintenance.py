"""Maintenance windows (R9): the rules, in one place for playbooks/maintenance.yml (its filter
plugin and `lpse-status maintenance` on the monitoring server), `fab maintenance-on` and the status
board.

- A time is ISO 8601 *with* its zone (2026-11-24T22:00:00+07:00); a time without one is refused,
  since the same clock reading is three different moments in WIB, WITA and WIT.
- A window runs from when it is announced to its end, half-open: [start, end). A blackout (a
  tender-closing period, when bidders must reach SPSE) is the same. A window overlaps a blackout
  when each starts before the other ends: one that ends at the very second a blackout starts does
  not, one second more does.
- One record per window in the records folder, named by its end (epoch seconds): what was
  announced, when, why, by whom, whether blackouts were overridden, and when it really ended if
  that was early. Announcing the same end again changes nothing; a new end ends the open window
  early and records the new one; "off" ends every open window. Bad input records nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lpse_status.records import load, parse_time, write_json

# Indonesia's three zones, by their offset from UTC in hours.
ZONE_NAMES = {7: "WIB", 8: "WITA", 9: "WIT"}
EXAMPLE = "2026-11-24T22:00:00+07:00"
END_HINT = f"-e maintenance_end=<when SPSE is back>, in the future, as {EXAMPLE} (with the zone: +07:00 is WIB)"


class MaintenanceError(ValueError):
    """A request that cannot be carried out as given; the message says what to change."""


def site_zone(offset_hours: float) -> dt.timezone:
    """The site's zone by its offset, named as Indonesians know it (WIB, WITA, WIT)."""
    name = ZONE_NAMES.get(int(offset_hours), f"UTC{offset_hours:+g}") if offset_hours == int(offset_hours) else None
    return dt.timezone(dt.timedelta(hours=offset_hours), name or f"UTC{offset_hours:+g}")


def parse_moment(text: str, what: str) -> dt.datetime:
    """An ISO 8601 time with its zone; MaintenanceError naming `what` otherwise."""
    try:
        moment = dt.datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        raise MaintenanceError(f"{what} {text!r} is not a time: write it as {EXAMPLE}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise MaintenanceError(f"{what} {text!r} has no time zone: write it as {EXAMPLE} (+07:00 WIB, "
                               "+08:00 WITA, +09:00 WIT)")  # fmt: skip
    return moment


def local_text(moment: dt.datetime) -> str:
    """As the maintenance page and the notices show it: "24-11-2026 22:00 WIB"."""
    offset = moment.utcoffset() or dt.timedelta(0)
    hours = offset.total_seconds() / 3600
    return moment.strftime("%d-%m-%Y %H:%M ") + (site_zone(hours).tzname(None) or "")


@dataclass(frozen=True)
class Blackout:
    """A period when SPSE must not be taken down (a tender stage closes then)."""

    start: float
    end: float
    reason: str
    source: str = "inventory"  # or "spse": read from SPSE's own schedule
    start_text: str = ""
    end_text: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"start": self.start_text, "end": self.end_text, "reason": self.reason, "source": self.source}


def parse_blackouts(items: Iterable[Any], source: str = "inventory") -> list[Blackout]:
    """The inventory's maintenance_blackouts: [{start, end, reason}], times with their zone."""
    out = []
    for i, item in enumerate(items or []):
        if not isinstance(item, dict):
            raise MaintenanceError(f"maintenance_blackouts entry {i + 1} is not a mapping of start, end and reason")
        label = f"maintenance_blackouts entry {i + 1} ({item.get('reason') or 'no reason given'})"
        if "start" not in item or "end" not in item:
            raise MaintenanceError(f"{label} needs start and end, as {EXAMPLE}")
        start, end = parse_moment(item["start"], f"{label}: start"), parse_moment(item["end"], f"{label}: end")
        if end <= start:
            raise MaintenanceError(f"{label} ends before it starts")
        reason, kind = str(item.get("reason") or "(no reason given)"), str(item.get("source") or source)
        out.append(Blackout(start.timestamp(), end.timestamp(), reason, kind, str(item["start"]), str(item["end"])))
    return out


def closing_blackouts(stages: Iterable[dict[str, Any]], before_s: float, after_s: float,
                      zone: dt.tzinfo) -> list[Blackout]:  # fmt: skip
    """A blackout around each closing in SPSE's own schedule (`lpse-exporter --spse-schedule`):
    from `before_s` before it, when bidders rush to upload, until `after_s` after it."""
    out = []
    for s in stages:
        closes = float(s["closes"])
        start, end = closes - before_s, closes + after_s
        when = dt.datetime.fromtimestamp(closes, zone)
        reason = f"penutupan {s['stage']} tender {s['tender']} ({s['name']}) pukul {local_text(when)}"
        out.append(Blackout(start, end, reason, "spse", dt.datetime.fromtimestamp(start, zone).isoformat(),
                            dt.datetime.fromtimestamp(end, zone).isoformat()))  # fmt: skip
    return out


def overlapping(start: float, end: float, blackouts: Iterable[Blackout]) -> list[Blackout]:
    """The blackouts the window [start, end) shares at least a second with."""
    return [b for b in blackouts if b.start < end and b.end > start]


@dataclass(frozen=True)
class Plan:
    """A checked request: maintenance on until `end`, or off."""

    on: bool
    end: dt.datetime | None
    overlaps: list[Blackout] = field(default_factory=list)
    forced: bool = False

    @property
    def end_epoch(self) -> int:
        return int(self.end.timestamp()) if self.end else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "on": self.on,
            "end_epoch": self.end_epoch,
            "until": local_text(self.end) if self.end else "",
            "overlaps": [b.as_dict() for b in self.overlaps],
            "forced": self.forced,
        }


def parse_switch(value: Any) -> bool:
    text = str(value).strip().lower()
    if text not in ("on", "off", "true", "false"):
        raise MaintenanceError(f"say -e maintenance=on (with {END_HINT.removeprefix('-e ')}) or -e maintenance=off")
    return text in ("on", "true")


def check(on: bool, end_text: str | None, blackouts: list[Blackout], force: bool, now: float) -> Plan:
    """The request as the playbook and fab take it: an end in the future, and no tender-closing
    blackout inside the window unless forced (then the record names what was overridden)."""
    if not on:
        return Plan(False, None)
    if not end_text:
        raise MaintenanceError(f"say when SPSE is back: {END_HINT}")
    try:
        end = parse_moment(end_text, "maintenance_end")
    except MaintenanceError as e:
        raise MaintenanceError(f"{e}; {END_HINT}") from None
    if end.timestamp() <= now:
        raise MaintenanceError(f"maintenance_end {end_text} has passed; {END_HINT}")
    hits = overlapping(now, end.timestamp(), blackouts)
    if hits and not force:
        names = "; ".join(f"{b.reason} ({b.start_text} to {b.end_text})" for b in hits)
        raise MaintenanceError(
            f"the window (now until {end_text}) overlaps the tender-closing blackout {names}: bidders must reach "
            "SPSE then. Move the window; if it cannot wait (SPSE is broken anyway), add -e maintenance_force=true "
            "(fab: --force) and the record says it was forced."
        )
    return Plan(True, end, hits, force and bool(hits))


@dataclass(frozen=True)
class Maintenance:
    """A recorded window, as the status board and the quarterly report read it."""

    start: float
    planned_end: float
    ended: float | None  # an early end (maintenance off before the planned end)
    reason_id: str
    reason_en: str
    forced: bool

    @property
    def end(self) -> float:
        return min(self.planned_end, self.ended) if self.ended else self.planned_end

    def active(self, now: float) -> bool:
        return self.start <= now < self.end


def _window(d: dict[str, Any]) -> Maintenance:
    return Maintenance(
        start=parse_time(d["start"]),
        planned_end=parse_time(d["end"]),
        ended=parse_time(d["ended_at"]) if d.get("ended_at") else None,
        reason_id=str(d.get("reason_id", "")),
        reason_en=str(d.get("reason_en", "")),
        forced=bool(d.get("forced_over_blackouts")),
    )


def maintenance_windows(folder: Path) -> list[Maintenance]:
    """Every recorded window, oldest first."""
    return sorted(load(folder, _window), key=lambda m: m.start)


def _iso_utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _open_records(folder: Path, now: float) -> list[tuple[Path, dict[str, Any]]]:
    """Records of windows still running at `now` that have not been ended."""
    out = []
    for path in sorted(folder.glob("[0-9]*.json")) if folder.is_dir() else []:
        if not path.stem.isdigit() or int(path.stem) <= now:
            continue
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # unreadable: the status board skips it too
        if isinstance(d, dict) and d.get("ended_at") is None:
            out.append((path, d))
    return out


@dataclass(frozen=True)
class Recorded:
    changed: bool
    written: list[str]  # names of the record files written

    def as_dict(self) -> dict[str, Any]:
        return {"changed": self.changed, "written": self.written}


def record(folder: Path, plan: Plan, now: float, reason_id: str = "", reason_en: str = "",
           hosts: list[str] | None = None, by: str = "", dry_run: bool = False) -> Recorded:  # fmt: skip
    """Write what `plan` means to the records: an early end for every other open window, and the
    new window's record (kept as first written when the same end is announced again)."""
    written = []
    keep = f"{plan.end_epoch}.json" if plan.on else None
    for path, d in _open_records(folder, now):
        if path.name != keep:
            written.append(path.name)
            if not dry_run:
                write_json(path, d | {"ended_at": _iso_utc(now)})
    if plan.on and plan.end is not None and not (folder / str(keep)).exists():
        written.append(str(keep))
        if not dry_run:
            folder.mkdir(parents=True, exist_ok=True)
            write_json(
                folder / str(keep),
                {
                    "kind": "maintenance",
                    "announced_at": _iso_utc(now),
                    "start": _iso_utc(now),
                    "end": plan.end.isoformat(),
                    "ended_at": None,
                    "reason_id": reason_id or "Pemeliharaan terjadwal server SPSE",
                    "reason_en": reason_en or "Scheduled maintenance of the SPSE server",
                    "hosts": hosts or [],
                    "announced_by": by or "unknown",
                    "forced_over_blackouts": [b.as_dict() for b in plan.overlaps] if plan.forced else [],
                },
            )
    return Recorded(bool(written), written)
