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
from lpse_runbooks import changes, readonly, room
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
    room.visit_in(Site.load(), visitor, purpose, allowed_by, organisation, escort, at)


@task(name="visit-out", positional=["visit"], help={"at": "when, ISO 8601 with zone (default: now)"})
@on_call
def visit_out(c: Any, visit: str, at: str = "") -> None:
    """Record that the visitor has left the server room (the id `fab visit-in` printed)."""
    room.visits(Site.load(), "out", visit, *(["--at", at] if at else []))


@task(name="visits", help={"open": "only those still inside"})
@on_call
def visits(c: Any, open_: bool = False) -> None:
    """The server room's visits, oldest first (who is inside now with --open)."""
    room.visits(Site.load(), "list", *(["--open"] if open_ else []))


ns = Collection(
    status, diagnose, restart_spse, maintenance_on, maintenance_off, disk_cleanup, restore, rotate_drive,
    visit_in, visit_out, visits,
)  # fmt: skip
