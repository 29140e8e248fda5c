"""The records the status board shows: incidents (drafted from the alerts; cause and actions added
by on-call) and server-room visits; maintenance windows are lpse_status.maintenance's. One JSON file per
record, written whole (temporary file, fsync, rename) so a reader never sees half of one."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def parse_time(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def write_text(path: Path, text: str) -> None:
    """The whole file or none of it: a temporary file beside it, fsynced, renamed into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """One writer at a time in a records folder: the board's webhook and forms and on-call's
    command line each read a record, change it and write it back; without this, one of two
    changes to the same record could be lost."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_json(path: Path, data: object) -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def load(folder: Path, make: Callable[[dict[str, Any]], T]) -> list[T]:
    """Every record in the folder, one JSON file each; an unreadable one is skipped, not fatal."""
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            out.append(make(json.loads(path.read_text())))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def save(folder: Path, record_id: str, record: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record_id}.json"
    write_json(path, asdict(record))
    return path


@dataclass
class Incident:
    """One outage, as it will be explained: the timeline comes from Prometheus and Alertmanager,
    the cause and the actions from on-call."""

    id: str
    alertname: str
    instance: str
    severity: str
    first_failure: float  # first failed probe (or the alert's start when no probe says more)
    alert_start: float
    notified: float | None
    resolved: float | None
    recovered: float | None  # first good probe after the failure
    summary_id: str = ""
    summary_en: str = ""
    cause_id: str = ""
    cause_en: str = ""
    actions: list[str] = field(default_factory=list)
    published: bool = False  # explained, shown among the past incidents
    affects: list[str] = field(default_factory=list)  # lpse_status.incidents.AFFECTS
    # On-call's public updates while it lasts, oldest first: {at, state, message_id, message_en, by}.
    updates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def duration_s(self) -> float | None:
        end = self.recovered or self.resolved
        return end - self.first_failure if end else None

    @property
    def state(self) -> str:
        """Its last public update's state (investigating, identified, monitoring, resolved), or
        "" while on-call has said nothing."""
        return str(self.updates[-1]["state"]) if self.updates else ""

    @property
    def live(self) -> bool:
        """On the public page as an ongoing disruption: updated, and not yet said resolved."""
        return bool(self.updates) and self.state != "resolved"

    def save(self, folder: Path) -> Path:
        return save(folder, self.id, self)


def incidents(folder: Path) -> list[Incident]:
    """Every incident, newest first."""
    return sorted(load(folder, lambda d: Incident(**d)), key=lambda i: i.first_failure, reverse=True)


@dataclass
class Visit:
    """One entry into the server room (R4: visitors only with permission): who went in, who
    allowed it and why, when they came in and went out, and who escorted them."""

    id: str
    visitor: str
    organisation: str
    purpose: str
    allowed_by: str
    entered: float
    left: float | None = None
    escort: str = ""
    recorded_by: str = ""

    def save(self, folder: Path) -> Path:
        return save(folder, self.id, self)


def visits(folder: Path) -> list[Visit]:
    """Every recorded visit, oldest first."""
    return sorted(load(folder, lambda d: Visit(**d)), key=lambda v: v.entered)


def enter(
    folder: Path, visitor: str, organisation: str, purpose: str, allowed_by: str, at: float,
    escort: str = "", recorded_by: str = "",
) -> Visit:  # fmt: skip
    """Record someone going into the server room; refused without a name, a purpose and who allowed it."""
    missing = [n for n, v in (("visitor", visitor), ("purpose", purpose), ("allowed-by", allowed_by)) if not v.strip()]
    if missing:
        raise ValueError(f"a visit needs {', '.join('--' + m for m in missing)}: nobody enters the server room "
                         "without a name, a reason and someone who allowed it (R4)")  # fmt: skip
    stamp = dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    slug = "".join(c if c.isalnum() else "-" for c in visitor.lower()).strip("-")[:30] or "visitor"
    v = Visit(f"{stamp}-{slug}", visitor.strip(), organisation.strip(), purpose.strip(), allowed_by.strip(), at,
              escort=escort.strip(), recorded_by=recorded_by)  # fmt: skip
    if (folder / f"{v.id}.json").exists():
        raise ValueError(f"visit {v.id} is already recorded")
    v.save(folder)
    return v


def leave(folder: Path, visit_id: str, at: float) -> Visit:
    """Record the visitor going out; a visit leaves once, and not before it began."""
    found = {v.id: v for v in visits(folder)}
    if visit_id not in found:
        raise KeyError(f"no visit {visit_id!r} (lpse-status visits list --open shows who is inside)")
    v = found[visit_id]
    if v.left is not None:
        raise ValueError(
            f"visit {visit_id} already left at {dt.datetime.fromtimestamp(v.left, dt.UTC):%Y-%m-%d %H:%M} UTC"
        )
    if at < v.entered:
        raise ValueError(f"visit {visit_id} cannot leave before it entered")
    v.left = at
    v.save(folder)
    return v
