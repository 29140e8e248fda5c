"""On-call runbooks (fabric). Run from the lpse-ops checkout, against a host of a site's inventory:

    export LPSE_INVENTORY=inventories/<site>
    .venv/bin/fab --list
    .venv/bin/fab status spse            # read-only: one screen
    .venv/bin/fab diagnose spse          # read-only: a bundle of logs and states in ./diagnose/
    .venv/bin/fab restart-spse spse      # changes things: asks first (--yes), --dry-run says only

Read-only tasks never change a server. The others say what they will do, ask before doing it
(unless --yes) and accept --dry-run; disk-cleanup is a dry run unless --no-dry-run.
docs/runbooks/alerts.md says which task to run for which alert.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from fabric import task
from invoke.collection import Collection
from invoke.exceptions import Exit
from lpse_runbooks import board, changes, readonly
from lpse_runbooks.site import RunbookError, Site


def on_call(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A runbook error is one clear line and a non-zero exit, not a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RunbookError as e:
            raise Exit(f"fab {fn.__name__.replace('_', '-')}: {e}", code=1) from None

    return wrapper


# --- read-only ---------------------------------------------------------------------------


@task(positional=["host"], help={"json": "print what was found as JSON"})
@on_call
def status(c: Any, host: str, json_: bool = False) -> None:
    """One screen: SPSE up?, database, services, disk, RAM, link, backups, drive, firing alerts."""
    st = readonly.collect_status(Site.load(), host)
    if json_:
        print(json.dumps({"host": st.host, "alerts": st.alerts, "problems": st.problems}, indent=2))
    else:
        print("\n".join(st.lines))
        print(f"{len(st.problems)} problem(s)" if st.problems else "all fine")
    if st.problems:
        raise Exit(code=1)


@task(positional=["host"], help={"out": "folder for the bundle (default: ./diagnose)"})
@on_call
def diagnose(c: Any, host: str, out: str = "diagnose") -> None:
    """Collect logs, service states and recent errors into a timestamped bundle (no secrets)."""
    bundle = readonly.diagnose(Site.load(), host, Path(out))
    print(f"diagnose bundle: {bundle} ({bundle.stat().st_size / 1024:.0f} KiB); attach it when you escalate to LKPP")


# --- changes a server ----------------------------------------------------------------------

CHANGE_HELP = {"dry_run": "only say what would be done", "yes": "do not ask for confirmation"}


@task(name="restart-spse", positional=["host"], help=CHANGE_HELP)
@on_call
def restart_spse(c: Any, host: str, dry_run: bool = False, yes: bool = False) -> None:
    """Restart SPSE and wait until its page answers again."""
    changes.restart_spse(Site.load(), host, dry_run, yes)


@task(
    name="maintenance-on",
    help=CHANGE_HELP
    | {
        "end": "when SPSE is back, ISO 8601 with zone: 2026-11-24T22:00:00+07:00",
        "reason_id": "the reason, in Bahasa Indonesia (shown on the page)",
        "reason_en": "the reason, in English",
        "force": "go ahead even inside a tender-closing blackout period",
    },
)
@on_call
def maintenance_on(
    c: Any, end: str = "", reason_id: str = "", reason_en: str = "", force: bool = False,
    dry_run: bool = False, yes: bool = False,
) -> None:  # fmt: skip
    """Announce maintenance: SPSE maintenance page up, alerts silenced until --end, recorded."""
    changes.maintenance(Site.load(), True, end, reason_id, reason_en, force, dry_run, yes)


@task(name="maintenance-off", help=CHANGE_HELP)
@on_call
def maintenance_off(c: Any, dry_run: bool = False, yes: bool = False) -> None:
    """End maintenance: page down, the silence ended at once, recorded."""
    changes.maintenance(Site.load(), False, "", "", "", False, dry_run, yes)


@task(name="disk-cleanup", positional=["host"], help=CHANGE_HELP | {"dry_run": "list only (default)"})
@on_call
def disk_cleanup(c: Any, host: str, dry_run: bool = True, yes: bool = False) -> None:
    """Free disk space on listed, safe targets only; lists them unless --no-dry-run."""
    changes.disk_cleanup(Site.load(), host, dry_run, yes)


@task(
    positional=["host"],
    help=CHANGE_HELP
    | {
        "source": "s3 (off-room bucket) or portable (the drive)",
        "time": "point in time, ISO 8601",
        "force": "restore over a server that still holds SPSE data (it is moved aside)",
    },
)
@on_call
def restore(
    c: Any, host: str, source: str = "s3", time: str = "", dry_run: bool = False, yes: bool = False, force: bool = False
) -> None:
    """Restore the SPSE database and documents onto the host (playbooks/restore.yml)."""
    changes.restore(Site.load(), host, source, time, dry_run, yes, force)


@task(
    name="rotate-drive",
    positional=["host"],
    help=CHANGE_HELP | {"force": "eject even though the last copies to the drive failed"},
)
@on_call
def rotate_drive(c: Any, host: str, dry_run: bool = False, yes: bool = False, force: bool = False) -> None:
    """Take the backup drive out for the safe, or check in the next one (run once for each)."""
    changes.rotate_drive(Site.load(), host, dry_run, yes, force)


# --- the server room's visit log (kept on the monitoring server) -------------------------------


@task(
    name="visit-in",
    help={
        "visitor": "the visitor's name",
        "purpose": "why they go in (Bahasa Indonesia)",
        "allowed_by": "who gave permission",
        "organisation": "their organisation, e.g. the UPS vendor",
        "escort": "the LPSE staff member with them",
        "at": "when, ISO 8601 with zone (default: now)",
    },
)
@on_call
def visit_in(
    c: Any, visitor: str = "", purpose: str = "", allowed_by: str = "", organisation: str = "", escort: str = "",
    at: str = "",
) -> None:  # fmt: skip
    """Record someone going into the server room (R4): who, why, who allowed it."""
    board.visit_in(Site.load(), visitor, purpose, allowed_by, organisation, escort, at)


@task(name="visit-out", positional=["visit"], help={"at": "when, ISO 8601 with zone (default: now)"})
@on_call
def visit_out(c: Any, visit: str, at: str = "") -> None:
    """Record that the visitor has left the server room (the id `fab visit-in` printed)."""
    board.lpse_status(Site.load(), "visits", "out", visit, *board.optional(at=at))


@task(name="visits", help={"open": "only those still inside"})
@on_call
def visits(c: Any, open_: bool = False) -> None:
    """The server room's visits, oldest first (who is inside now with --open)."""
    board.lpse_status(Site.load(), "visits", "list", *(["--open"] if open_ else []))


# --- incidents and the helpdesk (public updates, bidders' reports; kept on the monitoring server) --

INCIDENT_HELP = {
    "message_id": "what is known now, in Bahasa Indonesia (bidders read it on the status page)",
    "message_en": "the same in English",
    "severity": "critical (full outage), major or minor",
    "affects": "what it breaks: spse, login, upload, download, schedule, email, network (repeat)",
}


@task(
    name="incident-open",
    iterable=["affects"],
    help=INCIDENT_HELP | {"summary_id": "the public headline, Bahasa Indonesia", "summary_en": "the same in English"},
)
@on_call
def incident_open(
    c: Any, summary_id: str = "", message_id: str = "", summary_en: str = "", message_en: str = "",
    severity: str = "major", affects: list[str] | None = None,
) -> None:  # fmt: skip
    """Open a disruption no alert opened: on the public status page at once, as investigating."""
    board.incident_open(Site.load(), summary_id, message_id, summary_en, message_en, severity, affects)


@task(
    name="incident-update",
    positional=["incident"],
    iterable=["affects"],
    help=INCIDENT_HELP | {"state": "investigating, identified, monitoring or resolved"},
)
@on_call
def incident_update(
    c: Any, incident: str, state: str = "", message_id: str = "", message_en: str = "", severity: str = "",
    affects: list[str] | None = None,
) -> None:  # fmt: skip
    """Post an update to an incident (its id from `fab incidents`): on the public page at once."""
    board.incident_update(Site.load(), incident, state, message_id, message_en, severity, affects)


@task(name="escalate", positional=["incident", "host"])
@on_call
def escalate(c: Any, incident: str, host: str) -> None:
    """Escalate to LKPP (R15): the host's diagnose bundle, the incident's timeline and its Berita
    Acara Gangguan in one archive, mailed to the LKPP contact (status_board_lkpp_contact)."""
    board.escalate(Site.load(), incident, host)


@task(name="incidents")
@on_call
def incidents(c: Any) -> None:
    """Every incident, newest first, with its public state."""
    board.lpse_status(Site.load(), "incidents", "list")


@task(
    name="helpdesk-report",
    help={
        "reporter": "who reported: name and company or agency",
        "summary": "what they reported",
        "urgency": "high (a deadline today), medium or low",
        "impact": "one (user), several or all",
        "contact": "how to reach them back",
        "channel": "telepon, email, whatsapp, datang or lainnya",
        "incident": "the incident it belongs to (its id)",
    },
)
@on_call
def helpdesk_report(
    c: Any, reporter: str = "", summary: str = "", urgency: str = "medium", impact: str = "one", contact: str = "",
    channel: str = "telepon", incident: str = "",
) -> None:  # fmt: skip
    """Record a bidder's report to the helpdesk."""
    board.helpdesk_add(Site.load(), reporter, summary, urgency, impact, contact, channel, incident)


@task(name="helpdesk-told", positional=["report"])
@on_call
def helpdesk_told(c: Any, report: str) -> None:
    """The reporter has been told back (the id `fab helpdesk-report` printed)."""
    board.lpse_status(Site.load(), "helpdesk", "told", report)


@task(name="helpdesk-link", positional=["report", "incident"])
@on_call
def helpdesk_link(c: Any, report: str, incident: str) -> None:
    """Tie a helpdesk report to the incident it is part of."""
    board.lpse_status(Site.load(), "helpdesk", "link", report, incident)


@task(name="helpdesk", help={"open": "only those not yet told back"})
@on_call
def helpdesk(c: Any, open_: bool = False) -> None:
    """The helpdesk's reports, newest first."""
    board.lpse_status(Site.load(), "helpdesk", "list", *(["--open"] if open_ else []))


ns = Collection(
    status, diagnose, restart_spse, maintenance_on, maintenance_off, disk_cleanup, restore, rotate_drive,
    visit_in, visit_out, visits, incident_open, incident_update, incidents, escalate, helpdesk_report, helpdesk_told,
    helpdesk_link, helpdesk,
)  # fmt: skip
